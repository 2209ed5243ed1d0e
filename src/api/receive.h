/*-------------------------------------------------------------------------
 *
 * receive.h
 *	  The consumer API's per-transaction work.
 *
 * IDENTIFICATION
 *	  src/api/receive.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_RECEIVE_H
#define TXM_RECEIVE_H

#include "access/xact.h"

extern void txm_receive_xact_callback(XactEvent event);

#endif							/* TXM_RECEIVE_H */
