/*-------------------------------------------------------------------------
 *
 * dedup.c
 *	  Idempotent sends: tx_message.dedup maps (topic, dedup key) to the
 *	  message that was sent with it first.
 *
 * A send with a dedup key inserts its row with ON CONFLICT DO NOTHING
 * before it stores the message.  The primary key does what a unique index
 * does for any table: a second sender whose key is held by a transaction
 * still in progress waits for it, and then finds its row (it committed) or
 * inserts its own (it rolled back).  Under REPEATABLE READ, a key held by a
 * transaction that committed after the snapshot is a serialization failure,
 * as for any INSERT ... ON CONFLICT.  A half message that was rolled back,
 * or a message no longer stored, gives its key up to the next sender; the
 * housekeeping step of the worker removes such rows (engine/housekeeping.c).
 * Plain and half messages of a topic share its keys.
 * Sends without a key never come here.
 *
 * IDENTIFICATION
 *	  src/storage/dedup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/storage/dedup.h"

/*
 * Give a topic's dedup key to the message msg_id, which the caller stores
 * next in this transaction, or find the message that holds it.  Returns 0
 * if the key is msg_id's now, else the id of the message that holds it.
 */
int64
txm_dedup_claim(int32 topic_id, Datum key, int64 msg_id, TimestampTz sent_at)
{
	static const char *insert_sql =
		"INSERT INTO tx_message.dedup (topic_id, dedup_key, msg_id, sent_at)"
		" VALUES ($1, $2, $3, $4) ON CONFLICT (topic_id, dedup_key) DO NOTHING";
	/*
	 * The holder, and whether it is still stored: a half message rolled
	 * back, or a message retention removed before the housekeeping removed
	 * its key, holds the key no longer.
	 */
	static const char *find_sql =
		"SELECT d.msg_id,"
		"       NOT (EXISTS (SELECT FROM tx_message.log_0 l WHERE l.pos = d.msg_id)"
		"         OR EXISTS (SELECT FROM tx_message.log_1 l WHERE l.pos = d.msg_id)"
		"         OR EXISTS (SELECT FROM tx_message.log_2 l WHERE l.pos = d.msg_id)"
		"         OR EXISTS (SELECT FROM tx_message.moved m WHERE m.msg_id = d.msg_id)"
		"         OR EXISTS (SELECT FROM tx_message.delayed x WHERE x.msg_id = d.msg_id)"
		"         OR EXISTS (SELECT FROM tx_message.half_messages h"
		"                     WHERE h.msg_id = d.msg_id AND h.state <> 'rolled_back'))"
		"  FROM tx_message.dedup d WHERE d.topic_id = $1 AND d.dedup_key = $2";
	static const char *take_sql =
		"UPDATE tx_message.dedup SET msg_id = $3, sent_at = $4"
		" WHERE topic_id = $1 AND dedup_key = $2 AND msg_id = $5";
	Oid			types[5] = {INT4OID, TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[5];
	int64		holder = 0;

	if (!txm_catalog()->v1_1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dedup keys need version 1.1 of the extension tx_message"),
				 errhint("Run ALTER EXTENSION tx_message UPDATE.")));
	values[0] = Int32GetDatum(topic_id);
	values[1] = key;
	values[2] = Int64GetDatum(msg_id);
	values[3] = TimestampTzGetDatum(sent_at);
	SPI_connect();
	for (;;)
	{
		bool		isnull;

		if (txm_spi_exec(insert_sql, 4, types, values, NULL, 0) == 1)
			break;
		/* the holder committed (or was ours): read it as it is now */
		if (txm_spi_exec_latest(find_sql, 2, types, values, NULL, 1) == 1)
		{
			bool		gone = DatumGetBool(txm_spi_value(0, 2, &isnull));

			holder = DatumGetInt64(txm_spi_value(0, 1, &isnull));
			if (!gone)
				break;
			values[4] = Int64GetDatum(holder);
			holder = 0;
			if (txm_spi_exec(take_sql, 5, types, values, NULL, 0) == 1)
				break;
		}
		/* removed or taken meanwhile: try again */
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	return holder;
}
