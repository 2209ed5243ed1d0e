/*-------------------------------------------------------------------------
 *
 * find.c
 *	  Where is my message: tx_find, the stored messages of a topic with a
 *	  given key.
 *
 * Keys are not indexed: an index would cost every tx_send of every topic
 * (the log is written with direct heap and index inserts), and most topics
 * never look a key up.  tx_find scans what retention keeps of the topic
 * since the time given, newest first; bench/ states what that costs.
 *
 * IDENTIFICATION
 *	  src/api/find.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "src/base/acl.h"
#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/base/validate.h"

PG_FUNCTION_INFO_V1(tx_find);

#define TXM_MAX_FIND 10000

/*
 * tx_find(topic text, key text, since timestamptz, max integer)
 *	RETURNS SETOF tx_message.messages
 */
Datum
tx_find(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"SELECT m.msg_id, $5::text, m.key, m.tags, m.headers, m.payload, m.state, m.sent_at, m.deliver_at"
		"  FROM (SELECT coalesce(l.msg_id, l.pos) AS msg_id, l.key, l.tags, l.headers, l.payload,"
		"               'committed'::text AS state, l.sent_at, coalesce(l.deliver_at, l.sent_at) AS deliver_at"
		"          FROM (SELECT * FROM tx_message.log_0 UNION ALL SELECT * FROM tx_message.log_1"
		"                UNION ALL SELECT * FROM tx_message.log_2) l"
		"         WHERE l.topic_id = $1 AND l.key = $2 AND l.sent_at >= $3"
		"        UNION ALL"
		"        SELECT d.msg_id, d.key, d.tags, d.headers, d.payload, 'committed', d.sent_at, d.deliver_at"
		"          FROM tx_message.delayed d"
		"         WHERE d.topic_id = $1 AND d.key = $2 AND d.sent_at >= $3"
		"        UNION ALL"
		"        SELECT h.msg_id, h.key, h.tags, h.headers, h.payload, h.state, h.sent_at, NULL"
		"          FROM tx_message.half_messages h"
		"         WHERE h.topic_id = $1 AND h.key = $2 AND h.sent_at >= $3 AND h.state <> 'committed') m"
		" ORDER BY m.sent_at DESC, m.msg_id DESC LIMIT $4";
	Oid			types[5] = {INT4OID, TEXTOID, TIMESTAMPTZOID, INT4OID, TEXTOID};
	Datum		values[5];
	char		name[TXM_NAME_MAX + 1];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max;
	int			n;

	txm_require_arg(fcinfo, 0, "topic");
	txm_require_arg(fcinfo, 1, "key");
	txm_require_arg(fcinfo, 2, "since");
	txm_require_arg(fcinfo, 3, "max");
	txm_name_arg(PG_GETARG_TEXT_PP(0), "topic", name);
	txm_check_key(PG_GETARG_DATUM(1));
	max = PG_GETARG_INT32(3);
	txm_check_int_range("max", max, 1, TXM_MAX_FIND);

	values[0] = Int32GetDatum(txm_topic_id_for(name, TXM_PRIV_RECEIVE));
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	values[3] = Int32GetDatum(max);
	values[4] = CStringGetTextDatum(name);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	n = txm_spi_exec(sql, 5, types, values, NULL, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		row[9];
		bool		nulls[9];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
