/*-------------------------------------------------------------------------
 *
 * spi.h
 *	  How tx_message runs its own statements and writes its own rows: as
 *	  the owner of its relations, with plans prepared once under a fixed
 *	  search_path, or straight into the heap and its indexes.
 *
 * IDENTIFICATION
 *	  src/base/spi.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TXM_SPI_H
#define TXM_SPI_H

#include "access/transam.h"
#include "executor/spi.h"
#include "utils/relcache.h"

/*
 * Internal SQL runs as the owner of the extension's relations (as RI
 * triggers run as the owner of the referenced table): callers of the public
 * functions need no privileges on the internal tables.
 */
typedef struct TxmSavedUser
{
	Oid			userid;
	int			sec_context;
} TxmSavedUser;

extern void txm_become_owner(TxmSavedUser *saved);
extern void txm_restore_user(const TxmSavedUser *saved);

extern int	txm_spi_exec(const char *sql, int nargs, const Oid *argtypes,
						 Datum *values, const char *nulls, long count);
extern int	txm_spi_exec_latest(const char *sql, int nargs, const Oid *argtypes,
								Datum *values, const char *nulls, long count);
extern void txm_spi_utility(const char *sql);
extern Datum txm_spi_value(int row, int column, bool *isnull);
extern int *txm_spi_rows_in_order(int n, int at_column, int id_column);
extern FullTransactionId txm_prepared_xid(const char *gid);

/* The nulls argument of SPI_execute_plan spells NULL 'n' and not-NULL ' '. */
static inline char
txm_spi_null(bool isnull)
{
	return isnull ? 'n' : ' ';
}

/*
 * Rows put straight into one of the extension's tables and its indexes; a
 * batch inserter keeps them until it has many (or is closed), and writes
 * them to the heap together.
 */
typedef struct TxmInserter
{
	Relation	rel;			/* opened RowExclusiveLock by the caller */
	int			nindexes;
	Relation   *indexes;
	struct IndexInfo **infos;
	struct TupleTableSlot *slot;
	bool		batch;
	int			nkept;			/* rows kept in kept[], not in the table yet */
	Size		kept_bytes;
	struct TupleTableSlot **kept;
} TxmInserter;

extern void txm_inserter_open(TxmInserter *ins, Relation rel);
extern void txm_inserter_open_batch(TxmInserter *ins, Relation rel);
extern void txm_inserter_insert(TxmInserter *ins, Datum *values, bool *nulls);
extern void txm_inserter_close(TxmInserter *ins);
extern void txm_insert_row(Relation rel, Datum *values, bool *nulls);
extern void txm_update_row(Relation rel, ItemPointer tid, HeapTuple newtup);

#endif							/* TXM_SPI_H */
