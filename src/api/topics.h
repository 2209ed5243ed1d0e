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
extern void txm_check_dead_letter_topic(const char *topic, const char *dead_letter_topic,
										bool allow_empty);

#endif							/* TXM_API_TOPICS_H */
