# Makefile for the tx_message extension (PGXS)

MODULE_big = tx_message
OBJS = \
	tx_message.o \
	src/catalog.o \
	src/consume.o \
	src/handlers.o \
	src/maint.o \
	src/send.o \
	src/shmem.o \
	src/subs.o \
	src/tick.o \
	src/topics.o \
	src/worker.o

EXTENSION = tx_message
DATA = tx_message--1.0.sql
PGFILEDESC = "tx_message - transactional messaging inside PostgreSQL"

# Tests run against throwaway instances that preload the library
# (test.conf), built by pg_regress from the installed server; run
# "make install" first.  PGXS's own "make check" is not supported.
REGRESS = topics send half checkback subscribe consume retry ordered handlers order_points retention
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=$(srcdir)/test.conf
ISOLATION = producers delivery checkback_race consumers ordered_keys redrive claims
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test_isolation.conf
TAP_TESTS = 1
EXTRA_CLEAN = tmp_check_regress tmp_check_iso output_iso

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; every object uses the shared header.
$(OBJS): $(srcdir)/src/tx_message.h
