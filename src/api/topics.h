/*-------------------------------------------------------------------------
 *
 * topics.h
 *	  What the other SQL functions need of topics.c.
 *
 * IDENTIFICATION
 *	  src/api/topics.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_API_TOPICS_H
#define TXM_API_TOPICS_H

extern void txm_lock_topic(const char *topic, bool for_update);

#endif							/* TXM_API_TOPICS_H */
