/*
 * A tx_message consumer in C with libpq.
 *
 *	  cc -o consumer consumer.c -I"$(pg_config --includedir)" -lpq
 *	  PGHOST=... PGDATABASE=... ./consumer GROUP
 *
 * Each batch is received, processed and acknowledged in ONE transaction, so
 * the effects and the ack commit together (exactly once in this database);
 * a message whose processing fails is nacked in it (its retry follows the
 * subscription's backoff).  It waits for messages without polling and stops
 * cleanly on SIGTERM or SIGINT, after the batch under way.  Message ids are
 * bigints: they are kept as the text libpq returns, never as a double.
 *
 * The work here records each message in client_effects, and fails messages
 * whose payload says {"fail": true}.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stopping = 0;

static void
stop(int signo)
{
	(void) signo;
	stopping = 1;
}

/* Run a statement; any error ends the program (the transaction is rolled back). */
static PGresult *
run(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "consumer: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		exit(1);
	}
	return res;
}

/* Your work, in the transaction of the ack; returns NULL or why it failed. */
static const char *
handle(PGconn *conn, const char *msg_id, const char *payload)
{
	const char *params[2] = {msg_id, payload};
	PGresult   *res;

	res = run(conn, "SELECT coalesce(($1::jsonb->>'fail')::boolean, false)", 1, &payload);
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
	{
		PQclear(res);
		return "the payload says fail";
	}
	PQclear(res);
	PQclear(run(conn, "INSERT INTO client_effects (client, msg_id, payload) VALUES ('c', $1, $2)",
				2, params));
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *group = argc > 1 ? argv[1] : "workers";
	struct sigaction sa;
	PGconn	   *conn;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "consumer: %s", PQerrorMessage(conn));
		return 1;
	}
	while (!stopping)
	{
		PGresult   *batch;

		PQclear(run(conn, "BEGIN", 0, NULL));
		batch = run(conn, "SELECT msg_id, payload FROM tx_receive($1, 100, wait => '2 s')", 1, &group);
		for (int i = 0; i < PQntuples(batch); i++)
		{
			const char *msg_id = PQgetvalue(batch, i, 0);
			const char *error;

			PQclear(run(conn, "SAVEPOINT one", 0, NULL));
			error = handle(conn, msg_id, PQgetvalue(batch, i, 1));
			if (error == NULL)
				PQclear(run(conn, "RELEASE SAVEPOINT one", 0, NULL));
			else
			{
				const char *params[3] = {group, msg_id, error};

				PQclear(run(conn, "ROLLBACK TO SAVEPOINT one", 0, NULL));
				PQclear(run(conn, "SELECT tx_nack($1, $2, $3)", 3, params));
			}
		}
		/* every message this transaction received and did not nack */
		if (PQntuples(batch) > 0)
			PQclear(run(conn, "SELECT tx_ack($1)", 1, &group));
		PQclear(batch);
		PQclear(run(conn, "COMMIT", 0, NULL));
	}
	PQfinish(conn);
	printf("consumer: stopped\n");
	return 0;
}
