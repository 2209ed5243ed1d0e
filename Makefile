# Makefile for the tx_message extension (PGXS)

MODULE_big = tx_message
# src/ is layered: each directory calls only those listed before it
# (docs/design.md, "Source map"; scripts/check_layers.sh enforces it).
OBJS = \
	src/base/validate.o \
	src/base/catalog.o \
	src/base/acl.o \
	src/base/spi.o \
	src/base/subcache.o \
	src/base/filter.o \
	src/base/msgjson.o \
	src/base/packed.o \
	src/base/shmem.o \
	src/base/shmem_restore.o \
	src/base/shmem_ring.o \
	src/base/shmem_pool.o \
	src/base/shmem_claims.o \
	src/base/shmem_totals.o \
	src/base/shmem_xact.o \
	src/storage/log.o \
	src/storage/stream.o \
	src/storage/commit_order.o \
	src/storage/tick.o \
	src/storage/lease.o \
	src/storage/failures.o \
	src/storage/lineage.o \
	src/storage/dedup.o \
	src/engine/usercode.o \
	src/engine/housekeeping.o \
	src/engine/retention.o \
	src/engine/checkback.o \
	src/engine/deliveries.o \
	src/engine/claim_retries.o \
	src/engine/claim.o \
	src/engine/settle.o \
	src/engine/handlers.o \
	src/engine/maintenance.o \
	src/api/send.o \
	src/api/find.o \
	src/api/half.o \
	src/api/receive.o \
	src/api/topics.o \
	src/api/grants.o \
	src/api/subs.o \
	src/api/seek.o \
	src/api/cdc.o \
	src/api/deadletters.o \
	src/api/admin.o \
	src/process/unit.o \
	src/process/launcher.o \
	src/process/worker.o \
	src/process/executor.o \
	tx_message.o

EXTENSION = tx_message
DATA = tx_message--1.0.sql tx_message--1.0--1.1.sql
PGFILEDESC = "tx_message - transactional messaging inside PostgreSQL"

# Tests run against throwaway instances that preload the library
# (test.conf), built by pg_regress from the installed server; run
# "make install" first.  PGXS's own "make check" is not supported.
REGRESS = topics catalog send half checkback subscribe consume retry ack_received ordered handlers order_points retention bad_input security search_path stats find trace dead_letter_topic seek dedup filter check_options parity_security cdc log_rows slice_rows
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=$(srcdir)/test.conf
ISOLATION = producers delivery checkback_race consumers ordered_keys redrive claims privileges topic_drop group_owner subscribe_race topic_drop_send nack_redrive lease_expiry half_race handler_ack retention_reader dedup_race seek_race dead_letter_race handler_claim_error handler_stopped restore_load ordered_hint_race ordered_attack
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test_isolation.conf
TAP_TESTS = 1
EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso

PG_CPPFLAGS = -I$(srcdir)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard $(srcdir)/src/*/*.h)

# a release tarball of the committed tree: tx_message-<META.json's version>.tar.gz
.PHONY: dist
dist:
	bash $(srcdir)/scripts/dist.sh
