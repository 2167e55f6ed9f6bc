/*
 * Storage of multi-user chat rooms: one job struct per operation and what
 * a backend implements for them (struct muc_store_vfuncs).  The persistent
 * rooms of a MUC service (XEP-0045) with their affiliation lists, and the
 * nicks registered with the service.
 *
 * A job's base.user is not a user: it is the key that orders the jobs
 * (storage.c runs the jobs of one host+user on one worker, in order):
 * "room@service" for the operations on one room, so one room's writes
 * keep their order while different rooms are written in parallel, and
 * "service" for the load and the nick registrations.  The work reads the
 * service and room from the job's own fields.
 *
 * Only storage/ includes this; the public functions and their contracts
 * are in storage.h, the generic job machinery in storage-private.h.  A
 * job's inputs are copies in its pool; its work fills the results (in the
 * pool too) and returns the result.  Each vfunc runs where the store runs
 * jobs (a worker thread, or the loop for a store without workers) and gets
 * that place's connection state as conn.
 */
#ifndef PARLEY_STORAGE_MUC_STORE_H
#define PARLEY_STORAGE_MUC_STORE_H

#include "storage/storage-private.h"

struct muc_load_job {
	struct storage_req base;
	storage_muc_load_cb *cb;
	const char *service;
	/* results, in pool: rooms sorted by name (byte-wise), each room's
	 * affiliations sorted by jid; nicks sorted by jid */
	struct muc_room_item *rooms;
	size_t nrooms;
	struct muc_nick_item *nicks;
	size_t nnicks;
};

struct muc_room_store_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *service;
	struct muc_room_item room; /* deep copy in pool */
};

struct muc_room_delete_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *service;
	const char *name;
};

struct muc_nick_set_job {
	struct storage_req base;
	storage_done_cb *cb;
	const char *service;
	const char *jid;
	const char *nick; /* NULL: remove jid's registration */
};

struct muc_store_vfuncs {
	enum storage_result (*load)(void *conn, struct muc_load_job *j);
	enum storage_result (*room_store)(void *conn, struct muc_room_store_job *j);
	/* STORAGE_OK also when the room was not stored. */
	enum storage_result (*room_delete)(void *conn, struct muc_room_delete_job *j);
	/* STORAGE_EXISTS when another jid of the service holds the nick. */
	enum storage_result (*nick_set)(void *conn, struct muc_nick_set_job *j);
};

/* Sorting helpers every implementation uses, so all answer in one order. */
int muc_cmp_room(const void *a, const void *b);
int muc_cmp_affiliation(const void *a, const void *b);
int muc_cmp_nick(const void *a, const void *b);

#endif
