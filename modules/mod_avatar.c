/*
 * mod_avatar: vCard-based avatars (XEP-0153).  The server puts
 * <x xmlns='vcard-temp:x:update'><photo>SHA-1</photo></x> into the
 * available presence a user sends, where SHA-1 is the hex SHA-1 of the
 * image in the PHOTO/BINVAL of the user's stored vCard (an empty <photo/>
 * when the vCard has no image), and sends the user's presence again when a
 * new vCard changes the hash.  Loop thread.
 *
 * Where stanzas come from:
 * - user_send_packet (priority 30: after the privacy and blocking checks,
 *   before mod_presence broadcasts): available presence, broadcast or
 *   directed.  When the user's hash is known, any vcard-temp:x:update
 *   element the client put there is replaced by the server's; the
 *   session's remembered presence (used for probe answers) is updated
 *   too.  While the hash is not known yet the presence goes as the client
 *   sent it.
 * - vcard_set (mod_vcard, after a vCard was stored): the new hash; when it
 *   differs, each available session's presence goes out again with it.
 * - session_opened / session_closed: the per-user cache (user-cache.h).
 *   The vCard is read at the first session's open; when the read completes
 *   and a session already sent presence without the hash, that presence
 *   goes out again with it.
 *
 * On a host whose vCards come from LDAP (vcard: { source: ldap }) the hash
 * is the SHA-1 of the photo the vcard module puts into the user's vCard
 * (jpegPhoto or thumbnailPhoto, as its ldap_photo option says), read
 * through that module (vcard_ldap_fetch: its cache, else the directory on
 * its LDAP worker group) at the first session's open.  Each time the vcard
 * module reads the vCard from the directory again (its cache expired), its
 * vcard_set hook brings the new hash here.  While the hash is not known
 * (the read is under way, or failed) the presence carries an empty
 * <x xmlns='vcard-temp:x:update'/>, XEP-0153's "not ready to advertise an
 * image", in place of any the client put there: the client cannot know
 * the directory's photo.
 *
 * Invariants:
 * - A user has a cache entry while it has a session; the hash is computed
 *   when a vCard is stored (from the stored text at login) and cached, so
 *   presence never waits for storage.
 * - The presence this module sends again runs through user_send_packet
 *   like one the client sent (mod_presence broadcasts it), from the
 *   session's remembered presence.
 * - Every storage call or vCard read is a struct av_op on the module's
 *   pending list (pending.h); stop cancels them.
 */
#include "builtin.h"
#include "vcard.h"
#include "pending.h"
#include "user-cache.h"
#include "server/host.h"
#include "server/hooks.h"
#include "server/sm.h"
#include "lib/log.h"
#include "storage/storage.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define NS_VCARD "vcard-temp"
#define NS_VCARD_UPDATE "vcard-temp:x:update"

struct avatar_settings {
	unsigned unused;
};

static const struct opt_def avatar_options[] = { OPT_END };

struct av_user {
	struct user_cache_entry e; /* first: e.user is the user */
	bool known;
	char *hash; /* "" when the vCard has no image; valid when known */
	struct av_op *load;
};

struct av_state;

struct av_op {
	struct pending_op p; /* first: the state's list; p.call the storage read, or
	                                  on hosts with vCards from LDAP the read through
	                                  mod_vcard (vcard_ldap_fetch) */
	struct av_state *as; /* valid while p is listed */
	char *user;
};

struct av_state {
	struct host *host;
	bool ldap; /* the host's vCards come from LDAP */
	struct pending_ops ops;
	struct user_cache users; /* struct av_user */
};

/* ---- the hash ------------------------------------------------------------------ */

/* The hex SHA-1 of the PHOTO/BINVAL image of vcard, "" when it has none
 * (or the data does not decode).  Malloc'd. */
static char *avatar_photo_hash(const struct xml_node *vcard)
{
	const struct xml_node *photo = xml_child(vcard, "PHOTO", NS_VCARD);
	const char *b64 = photo != NULL ? xml_child_text(photo, "BINVAL", NS_VCARD) : NULL;
	if (b64 == NULL)
		return xstrdup("");
	/* Base64 in a vCard is often folded: drop the white space. */
	size_t len = strlen(b64);
	char *clean = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)b64[i]))
			clean[n++] = b64[i];
	clean[n] = '\0';
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	char *hash = NULL;
	if (n > 0 && base64_decode(clean, n, &raw, &raw_len) == 0 && raw_len > 0) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int md_len = 0;
		if (EVP_Digest(raw, raw_len, md, &md_len, EVP_sha1(), NULL) == 1)
			hash = hex_encode(md, md_len);
	}
	free(raw);
	free(clean);
	return hash != NULL ? hash : xstrdup("");
}

/* ---- cache ------------------------------------------------------------------------ */

static struct av_user *user_get(struct av_state *as, const char *name)
{
	return user_cache_get(&as->users, name);
}

static void op_free(struct pending_op *p)
{
	struct av_op *op = (struct av_op *)p;
	pending_untrack(p);
	free(op->user);
	free(op);
}

static void cancel_fetch(void *call)
{
	vcard_ldap_fetch_cancel(call);
}

/* The user's last session closed, or the module stops (user_cache clear):
 * the read in flight is cancelled (inside its callback, it finds no
 * user). */
static void user_clear(struct user_cache_entry *e, void *ctx)
{
	(void)ctx;
	struct av_user *u = (struct av_user *)e;
	if (u->load != NULL)
		pending_cancel(&u->load->p);
	free(u->hash);
}

/* Replace the update element of presence p with ours (hash known). */
static void stamp(struct xml_node *p, const char *hash)
{
	struct xml_node *x;
	while ((x = xml_child(p, "x", NS_VCARD_UPDATE)) != NULL)
		xml_remove(x);
	x = xml_add_child(p, "x", NS_VCARD_UPDATE);
	struct xml_node *photo = xml_add_child(x, "photo", NS_VCARD_UPDATE);
	if (*hash != '\0')
		xml_add_text(photo, hash, strlen(hash));
}

/* Replace the update element of presence p with an empty one: XEP-0153's
 * "not ready to advertise an image" (hash not known yet). */
static void stamp_not_ready(struct xml_node *p)
{
	struct xml_node *x;
	while ((x = xml_child(p, "x", NS_VCARD_UPDATE)) != NULL)
		xml_remove(x);
	xml_add_child(p, "x", NS_VCARD_UPDATE);
}

/* Whether presence p already carries exactly our hash. */
static bool has_stamp(const struct xml_node *p, const char *hash)
{
	const struct xml_node *x = xml_child(p, "x", NS_VCARD_UPDATE);
	if (x == NULL || xml_next(x, "x", NS_VCARD_UPDATE) != NULL)
		return false;
	const char *photo = xml_child_text(x, "photo", NS_VCARD_UPDATE);
	return photo != NULL && strcmp(photo, hash) == 0;
}

/* Send each available session's presence again (with the current hash). */
static void resend(struct av_state *as, struct av_user *u)
{
	struct host *h = as->host;
	size_t n = 0;
	for (struct session *s = sm_user_sessions(h, u->e.user); s != NULL; s = s->next_of_user)
		if (s->available && s->presence != NULL && !has_stamp(s->presence, u->hash))
			n++;
	if (n == 0)
		return;
	/* Session ids first: a hook may close a session under us. */
	uint64_t *ids = xcalloc(n, sizeof(*ids));
	size_t k = 0;
	for (struct session *s = sm_user_sessions(h, u->e.user); s != NULL && k < n; s = s->next_of_user)
		if (s->available && s->presence != NULL && !has_stamp(s->presence, u->hash))
			ids[k++] = s->id;
	char *user = xstrdup(u->e.user);
	for (size_t i = 0; i < k; i++) {
		struct session *s = sm_user_sessions(h, user);
		while (s != NULL && s->id != ids[i])
			s = s->next_of_user;
		if (s == NULL || !s->available || s->presence == NULL)
			continue;
		struct xml_node *p = xml_copy(s->presence);
		struct hook_packet hp = { .from = &s->jid, .to = NULL, .stanza = p, .session = s };
		hook_run(h, HOOK_USER_SEND_PACKET, &hp);
		xml_unref(&p);
	}
	free(user);
	free(ids);
}

static void vcard_loaded(enum storage_result res, const char *text, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct av_state *as = op->as;
	struct av_user *u = user_get(as, op->user);
	if (u != NULL && u->load == op)
		u->load = NULL;
	if (u != NULL && !u->known && (res == STORAGE_OK || res == STORAGE_NOT_FOUND)) {
		char *hash = NULL;
		if (res == STORAGE_OK) {
			const char *err = NULL;
			size_t len = strlen(text);
			const struct xml_parser_limits lim = {
				.max_stanza = len + 1,
				.max_depth = 64,
				.max_attrs = 64,
			};
			struct xml_node *vcard = xml_parse_string(text, len, NULL, &lim, &err);
			if (vcard != NULL && xml_is(vcard, "vCard", NS_VCARD))
				hash = avatar_photo_hash(vcard);
			xml_unref(&vcard);
		}
		u->hash = hash != NULL ? hash : xstrdup("");
		u->known = true;
		resend(as, u);
	} else if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		log_warning("avatar %s: the vCard of %s cannot be read (storage %s); presence goes "
		            "without an avatar hash until the next login or vCard change",
		            as->host->name, op->user, storage_result_str(res));
	}
	op_free(&op->p);
}

/* A vCard read from the directory through mod_vcard (hosts with vCards from
 * LDAP). */
static void vcard_fetched(enum storage_result res, const struct xml_node *vcard, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct av_state *as = op->as;
	struct av_user *u = user_get(as, op->user);
	if (u != NULL && u->load == op)
		u->load = NULL;
	if (res != STORAGE_OK) {
		log_warning("avatar %s: the vCard of %s cannot be read from the directory (%s); "
		            "presence says the avatar is not known until the vCard is read again",
		            as->host->name, op->user, storage_result_str(res));
	} else if (u != NULL && !u->known) {
		/* (a read from the directory itself ran the vcard_set hook first) */
		u->hash = avatar_photo_hash(vcard);
		u->known = true;
		resend(as, u);
	}
	op_free(&op->p);
}

/* ---- hooks ------------------------------------------------------------------------------ */

/* A session opened (user_cache): the vCard is read at the first one. */
static void avatar_opened(struct user_cache_entry *e, struct session *s, void *ctx)
{
	(void)s;
	struct av_state *as = ctx;
	struct host *h = as->host;
	struct av_user *u = (struct av_user *)e;
	if (!u->known && u->load == NULL) {
		struct av_op *op = xcalloc(1, sizeof(*op));
		op->as = as;
		op->user = xstrdup(u->e.user);
		pending_track(&as->ops, &op->p, op_free);
		u->load = op;
		if (as->ldap)
			pending_wait(&op->p, vcard_ldap_fetch(h, u->e.user, vcard_fetched, op), cancel_fetch);
		else
			pending_wait_storage(
			        &op->p, storage_vcard_get(h->storage, h->name, u->e.user, vcard_loaded, op));
		if (op->p.call == NULL) {
			/* the vcard module stopped reading from LDAP: nothing to wait for */
			u->load = NULL;
			op_free(&op->p);
		}
	}
}

static enum hook_result avatar_send(struct host *h, void *args, void *ctx)
{
	struct av_state *as = ctx;
	struct hook_packet *hp = args;
	if (hp->session == NULL || stanza_kind(hp->stanza) != STANZA_PRESENCE ||
	    xml_attr(hp->stanza, "type") != NULL)
		return HOOK_CONTINUE;
	struct av_user *u = user_get(as, hp->session->jid.node);
	if (u != NULL && !u->known && as->ldap) {
		stamp_not_ready(hp->stanza);
		return HOOK_CONTINUE;
	}
	if (u == NULL || !u->known)
		return HOOK_CONTINUE;
	stamp(hp->stanza, u->hash);
	if (hp->to == NULL && hp->session->presence != NULL && !has_stamp(hp->session->presence, u->hash)) {
		xml_unref(&hp->session->presence);
		hp->session->presence = xml_copy(hp->stanza);
	}
	return HOOK_CONTINUE;
}

static enum hook_result avatar_vcard_set(struct host *h, void *args, void *ctx)
{
	struct av_state *as = ctx;
	struct hook_vcard *hv = args;
	struct av_user *u = user_get(as, hv->user);
	if (u == NULL)
		return HOOK_CONTINUE;
	char *hash = avatar_photo_hash(hv->vcard);
	bool changed = !u->known || strcmp(u->hash, hash) != 0;
	free(u->hash);
	u->hash = hash;
	u->known = true;
	if (changed)
		resend(as, u);
	return HOOK_CONTINUE;
}

/* ---- module ------------------------------------------------------------------------------ */

static int avatar_start(struct host *h, const void *settings, void **state_r, char **error_r)
{
	struct av_state *as = xcalloc(1, sizeof(*as));
	as->host = h;
	const char *attrs[VF_COUNT];
	as->ldap = vcard_ldap_directory(h, attrs) != NULL;
	hook_add(h, HOOK_USER_SEND_PACKET, 30, avatar_send, as);
	hook_add(h, HOOK_VCARD_SET, 50, avatar_vcard_set, as);
	as->users = (struct user_cache){
		.entry_size = sizeof(struct av_user),
		.opened = avatar_opened,
		.clear = user_clear,
		.ctx = as,
	};
	user_cache_start(&as->users, h);
	*state_r = as;
	return 0;
}

static void avatar_stop(struct host *h, void *state)
{
	struct av_state *as = state;
	hook_remove(h, HOOK_USER_SEND_PACKET, avatar_send, as);
	hook_remove(h, HOOK_VCARD_SET, avatar_vcard_set, as);
	user_cache_stop(&as->users); /* cancels the reads of the cache */
	pending_stop(&as->ops);
	free(as);
}

const struct module_def mod_avatar = {
	.name = "avatar",
	.description = "XEP-0153 vCard-based avatars: the hash of the vCard photo in the user's "
	               "presence, sent again when the vCard changes",
	.options = avatar_options,
	.settings_size = sizeof(struct avatar_settings),
	.default_enabled = true,
	.start = avatar_start,
	.stop = avatar_stop,
};
