/*-------------------------------------------------------------------------
 *
 * cdc.c
 *	  tx_cdc_enable and tx_cdc_disable: change data capture through logical
 *	  decoding.
 *
 * When it is on, every message that enters the log is also written as a
 * transactional logical decoding message (storage/log.c), which a decoder
 * (pgoutput with messages => true, wal2json, Debezium) reads once, in commit
 * order, and only if its transaction committed.  The switch is a column of
 * this database's tx_message.instance row, which every producing
 * transaction locks in RowShareLock before its first message: switching
 * takes ExclusiveLock, so it waits for the transactions sending now, and
 * every transaction after it sees the new setting for all of its messages.
 *
 * IDENTIFICATION
 *	  src/api/cdc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/guc.h"

#include "src/base/catalog.h"
#include "src/base/spi.h"
#include "src/base/validate.h"

PG_FUNCTION_INFO_V1(tx_cdc_enable);
PG_FUNCTION_INFO_V1(tx_cdc_disable);

static void
set_cdc(bool on)
{
	static const char *sql = "UPDATE tx_message.instance SET cdc = $1";
	const TxmCatalog *c = txm_catalog();
	Oid			types[1] = {BOOLOID};
	Datum		values[1];

	if (!c->v1_1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("change data capture needs version 1.1 of the extension tx_message"),
				 errhint("Run ALTER EXTENSION tx_message UPDATE.")));
	LockRelationOid(c->instance, ExclusiveLock);
	values[0] = BoolGetDatum(on);
	SPI_connect();
	txm_spi_exec(sql, 1, types, values, NULL, 0);
	SPI_finish();
	txm_invalidate(c->instance);
	txm_forget_instance();
}

/* tx_cdc_enable() RETURNS void */
Datum
tx_cdc_enable(PG_FUNCTION_ARGS)
{
	txm_check_can_change("tx_cdc_enable()");
	if (!XLogLogicalInfoActive())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("change data capture needs wal_level = logical"),
				 errdetail("wal_level is \"%s\".", GetConfigOption("wal_level", false, false)),
				 errhint("Set wal_level = logical and restart the server.")));
	set_cdc(true);
	PG_RETURN_VOID();
}

/* tx_cdc_disable() RETURNS void */
Datum
tx_cdc_disable(PG_FUNCTION_ARGS)
{
	txm_check_can_change("tx_cdc_disable()");
	set_cdc(false);
	PG_RETURN_VOID();
}
