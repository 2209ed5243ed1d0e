/*-------------------------------------------------------------------------
 *
 * acl.h
 *	  Privileges on topics and ownership of consumer groups.
 *
 * IDENTIFICATION
 *	  src/base/acl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_ACL_H
#define TXM_ACL_H

#include "src/base/catalog.h"

/* Privileges on a topic, as a bit mask. */
#define TXM_PRIV_SEND		0x01
#define TXM_PRIV_RECEIVE	0x02
#define TXM_PRIV_ADMIN		0x04
#define TXM_PRIV_MONITOR	0x08
#define TXM_PRIV_EVERY		0x0F

extern void txm_acl_init(void);
extern int	txm_parse_privilege(const char *name);
extern const char *txm_privilege_name(int privilege);
extern int	txm_topic_privileges(const TxmTopic *topic, Oid role);
extern bool txm_has_topic_privilege(const TxmTopic *topic, Oid role, int privilege);
extern bool txm_has_topic_privilege_now(const TxmTopic *topic, Oid role, int privilege);
extern void txm_require_topic_privilege(const TxmTopic *topic, int privilege);
extern bool txm_may(const char *topic, Oid role, int privilege);
extern bool txm_may_id(int32 topic_id, Oid role, int privilege);
extern int32 txm_topic_id_for(const char *name, int privilege);
extern void txm_require_group_member(const char *group, Oid group_owner);

#endif							/* TXM_ACL_H */
