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
 * PEP avatars (XEP-0084) and the vCard photo are kept in step (XEP-0398;
 * urn:xmpp:pep-vcard-conversion:0 is announced on every account):
 * - A client publishes to the user's urn:xmpp:avatar:metadata node
 *   (pep_published hook, a client's publish): the <info/> that names no
 *   URL gives the image's id (its hex SHA-1) and type; the image is the
 *   item of that id in urn:xmpp:avatar:data.  Its SHA-1 is checked, then
 *   the stored vCard gets it as PHOTO (TYPE, BINVAL), other fields kept;
 *   a metadata without such an <info/> (XEP-0084's "no avatar") removes
 *   the PHOTO.  The write runs the vcard_set hook as mod_vcard's does
 *   (the presence hash follows).
 * - A vCard is stored with a photo (vcard_set hook): unless the metadata
 *   node already names the image's SHA-1, the image is published to
 *   urn:xmpp:avatar:data (item id: the hex SHA-1), then its metadata
 *   (<info id= bytes= type=/>) to urn:xmpp:avatar:metadata; a vCard
 *   without a photo publishes an empty <metadata/> when the node names an
 *   image.  Nodes the module creates keep PEP's defaults (access model
 *   presence, XEP-0084; one item).  At the first session's open, a
 *   vCard photo is published the same way when the user has no metadata
 *   node yet (accounts from before the conversion).
 * - What the module publishes carries origin "avatar", which its
 *   pep_published hook ignores; the vcard_set hook it runs for its own
 *   vCard write publishes nothing: no loops.
 * - On a host whose vCards come from LDAP the vCard is read-only: the
 *   directory photo is what the avatar nodes hold.  It is published at the
 *   first session's open and whenever the vcard module reads a vCard with
 *   another photo from the directory; a client's publish to the metadata
 *   node has the directory photo published again over it.
 *
 * Invariants:
 * - A user has a cache entry while it has a session; the hash is computed
 *   when a vCard is stored (from the stored text at login) and cached, so
 *   presence never waits for storage.
 * - The presence this module sends again runs through user_send_packet
 *   like one the client sent (mod_presence broadcasts it), from the
 *   session's remembered presence.
 * - Every storage call, vCard read or PEP call whose answer the module
 *   waits for is a struct av_op on the module's pending list (pending.h);
 *   stop cancels the storage calls and reads, and leaves an op waiting for
 *   PEP to its callback (the pubsub module starts after this module, so it
 *   stops before it and answers every call).
 */
#include "builtin.h"
#include "pep.h"
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_VCARD "vcard-temp"
#define NS_VCARD_UPDATE "vcard-temp:x:update"
#define NS_AVATAR_DATA "urn:xmpp:avatar:data"
#define NS_AVATAR_METADATA "urn:xmpp:avatar:metadata"
#define NS_PEP_VCARD_CONVERSION "urn:xmpp:pep-vcard-conversion:0"
#define AV_ORIGIN "avatar"

/* The avatar nodes the module creates: PEP's defaults. */
static const struct pep_node_options avatar_node_opts = { 0 };

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
	/* PEP conversions: the vCard to publish from, or the one written */
	struct xml_node *vcard;
	char *id, *type;      /* the image of a metadata <info/> */
	unsigned char *image; /* its bytes, read from the data node */
	size_t image_len;
	bool only_if_none; /* publish only when there is no metadata node */
};

struct av_state {
	struct host *host;
	bool ldap;       /* the host's vCards come from LDAP */
	bool self_write; /* running vcard_set for a vCard this module wrote */
	struct pending_ops ops;
	struct user_cache users; /* struct av_user */
};

/* ---- the hash ------------------------------------------------------------------ */

/* The bytes of base64 text b64 (NULL: none), white space ignored, or NULL
 * when it is empty or does not decode.  Malloc'd, *len_r bytes. */
static unsigned char *decode_folded(const char *b64, size_t *len_r)
{
	if (b64 == NULL)
		return NULL;
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
	if (n == 0 || base64_decode(clean, n, &raw, &raw_len) < 0 || raw_len == 0) {
		free(raw);
		raw = NULL;
		raw_len = 0;
	}
	free(clean);
	*len_r = raw_len;
	return raw;
}

/* The image of vcard's PHOTO/BINVAL (see decode_folded), or NULL. */
static unsigned char *photo_image(const struct xml_node *vcard, size_t *len_r)
{
	const struct xml_node *photo = xml_child(vcard, "PHOTO", NS_VCARD);
	return decode_folded(photo != NULL ? xml_child_text(photo, "BINVAL", NS_VCARD) : NULL, len_r);
}

/* The hex SHA-1 of data, "" when it cannot be computed.  Malloc'd. */
static char *sha1_hex(const unsigned char *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	if (EVP_Digest(data, len, md, &md_len, EVP_sha1(), NULL) != 1)
		return xstrdup("");
	return hex_encode(md, md_len);
}

/* The hex SHA-1 of the PHOTO/BINVAL image of vcard, "" when it has none
 * (or the data does not decode).  Malloc'd. */
static char *avatar_photo_hash(const struct xml_node *vcard)
{
	size_t len = 0;
	unsigned char *raw = photo_image(vcard, &len);
	char *hash = raw != NULL ? sha1_hex(raw, len) : xstrdup("");
	free(raw);
	return hash;
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
	xml_unref(&op->vcard);
	free(op->id);
	free(op->type);
	free(op->image);
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

static struct av_op *av_op_new(struct av_state *as, const char *user)
{
	struct av_op *op = xcalloc(1, sizeof(*op));
	op->as = as;
	op->user = xstrdup(user);
	pending_track(&as->ops, &op->p, op_free);
	return op;
}

/* ---- XEP-0398: the vCard photo and the PEP avatar ------------------------------ */

static void log_pep(const struct av_state *as, const char *user, const char *what, enum pep_result r)
{
	builtin_log_pep(as->host, "avatar", user, what, r);
}

/* The <info/> of a metadata payload that names no URL (XEP-0398), or
 * NULL: no avatar. */
static const struct xml_node *metadata_info(const struct xml_node *metadata)
{
	if (!xml_is(metadata, "metadata", NS_AVATAR_METADATA))
		return NULL;
	for (const struct xml_node *info = xml_child(metadata, "info", NS_AVATAR_METADATA); info != NULL;
	     info = xml_next(info, "info", NS_AVATAR_METADATA))
		if (xml_attr(info, "url") == NULL && xml_attr(info, "id") != NULL)
			return info;
	return NULL;
}

/* The MIME type of vcard's photo image: its TYPE, else what the bytes say. */
static const char *photo_type(const struct xml_node *vcard, const unsigned char *raw, size_t len)
{
	const struct xml_node *photo = xml_child(vcard, "PHOTO", NS_VCARD);
	const char *type = photo != NULL ? xml_child_text(photo, "TYPE", NS_VCARD) : NULL;
	if (type != NULL && *type != '\0')
		return type;
	type = vcard_image_type(raw, len);
	return type != NULL ? type : "application/octet-stream";
}

/* Publish user's metadata: image id (bytes long, of type), or no avatar
 * (id NULL).  Nothing waits for the outcome. */
static void publish_metadata(struct av_state *as, const char *user, const char *id, const char *type,
                             size_t bytes)
{
	struct xml_node *md = xml_new("metadata", NS_AVATAR_METADATA);
	if (id != NULL) {
		struct xml_node *info = xml_add_child(md, "info", NS_AVATAR_METADATA);
		char n[32];
		snprintf(n, sizeof(n), "%zu", bytes);
		xml_set_attr(info, "bytes", n);
		xml_set_attr(info, "id", id);
		xml_set_attr(info, "type", type);
	}
	enum pep_result r = pep_publish(as->host, user, NS_AVATAR_METADATA, id, md, &avatar_node_opts,
	                                AV_ORIGIN, NULL, NULL);
	if (r != PEP_OK)
		log_pep(as, user, "publishing the avatar metadata", r);
	xml_unref(&md);
}

/* The image is in the data node: its metadata follows. */
static void data_published(enum pep_result r, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume_answer(&op->p))
		return;
	if (r != PEP_OK)
		log_pep(op->as, op->user, "publishing the avatar data", r);
	else
		publish_metadata(op->as, op->user, op->id, op->type, op->image_len);
	op_free(&op->p);
}

/* The metadata node as it is: publish op->vcard's photo unless it names
 * it already. */
static void metadata_read(enum pep_result r, const struct pep_item *items, size_t n, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume_answer(&op->p))
		return;
	struct av_state *as = op->as;
	if ((r != PEP_OK && r != PEP_NOT_FOUND) || (op->only_if_none && r != PEP_NOT_FOUND)) {
		if (r != PEP_OK)
			log_pep(as, op->user, "reading the avatar metadata", r);
		op_free(&op->p);
		return;
	}
	const struct xml_node *info = r == PEP_OK && n > 0 ? metadata_info(items[0].payload) : NULL;
	const char *current = info != NULL ? xml_attr(info, "id") : NULL;
	op->image = photo_image(op->vcard, &op->image_len);
	if (op->image == NULL) {
		if (current != NULL)
			publish_metadata(as, op->user, NULL, NULL, 0); /* XEP-0084: no avatar */
		op_free(&op->p);
		return;
	}
	op->id = sha1_hex(op->image, op->image_len);
	if (*op->id == '\0' || (current != NULL && strcasecmp(current, op->id) == 0)) {
		op_free(&op->p);
		return;
	}
	op->type = xstrdup(photo_type(op->vcard, op->image, op->image_len));
	char *b64 = base64_encode(op->image, op->image_len);
	struct xml_node *data = xml_new("data", NS_AVATAR_DATA);
	xml_add_text(data, b64, strlen(b64));
	free(b64);
	pending_wait_answer(&op->p);
	enum pep_result pr = pep_publish(as->host, op->user, NS_AVATAR_DATA, op->id, data, &avatar_node_opts,
	                                 AV_ORIGIN, data_published, op);
	xml_unref(&data);
	if (pr != PEP_OK) {
		/* the callback does not run */
		log_pep(as, op->user, "publishing the avatar data", pr);
		op_free(&op->p);
	}
}

/* Publish the photo of user's vcard as the PEP avatar (only when the user
 * has no metadata node yet: only_if_none). */
static void pep_from_vcard(struct av_state *as, const char *user, const struct xml_node *vcard,
                           bool only_if_none)
{
	struct av_op *op = av_op_new(as, user);
	op->vcard = xml_copy(vcard);
	op->only_if_none = only_if_none;
	pending_wait_answer(&op->p);
	enum pep_result r = pep_items(as->host, op->user, NS_AVATAR_METADATA, metadata_read, op);
	if (r != PEP_OK) {
		log_pep(as, user, "reading the avatar metadata", r);
		op_free(&op->p);
	}
}

static void vcard_written_from_pep(enum storage_result res, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct av_state *as = op->as;
	if (res != STORAGE_OK) {
		log_warning("avatar %s: the vCard of %s cannot be stored with the PEP avatar (storage %s)",
		            as->host->name, op->user, storage_result_str(res));
	} else {
		/* as mod_vcard does after a set: the presence hash follows */
		struct hook_vcard hv = { .user = op->user, .vcard = op->vcard };
		as->self_write = true;
		hook_run(as->host, HOOK_VCARD_SET, &hv);
		as->self_write = false;
	}
	op_free(&op->p);
}

/* The stored vCard: its PHOTO becomes op's image (none: removed). */
static void vcard_read_for_pep(enum storage_result res, const char *text, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	struct av_state *as = op->as;
	struct host *h = as->host;
	if (res != STORAGE_OK && res != STORAGE_NOT_FOUND) {
		log_warning("avatar %s: the vCard of %s cannot be read (storage %s); it does not get "
		            "the PEP avatar",
		            h->name, op->user, storage_result_str(res));
		op_free(&op->p);
		return;
	}
	struct xml_node *vcard = res == STORAGE_OK ? builtin_parse_stored(text, "vCard", NS_VCARD) : NULL;
	if (vcard == NULL)
		vcard = xml_new("vCard", NS_VCARD);
	char *old = avatar_photo_hash(vcard);
	bool same = op->image != NULL ? strcasecmp(old, op->id) == 0 : *old == '\0';
	free(old);
	if (same) {
		xml_unref(&vcard);
		op_free(&op->p);
		return;
	}
	struct xml_node *photo;
	while ((photo = xml_child(vcard, "PHOTO", NS_VCARD)) != NULL)
		xml_remove(photo);
	if (op->image != NULL) {
		photo = xml_add_child(vcard, "PHOTO", NS_VCARD);
		const char *type = op->type;
		if (type == NULL || *type == '\0')
			type = vcard_image_type(op->image, op->image_len);
		if (type != NULL) {
			struct xml_node *t = xml_add_child(photo, "TYPE", NS_VCARD);
			xml_add_text(t, type, strlen(type));
		}
		char *b64 = base64_encode(op->image, op->image_len);
		xml_add_text(xml_add_child(photo, "BINVAL", NS_VCARD), b64, strlen(b64));
		free(b64);
	}
	op->vcard = vcard;
	char *out = xml_to_string(vcard, NULL);
	pending_wait_storage(&op->p, storage_vcard_set(host_store(h, STORAGE_AREA_VCARD), h->name, op->user,
	                                               out, vcard_written_from_pep, op));
	free(out);
}

/* The data node: the image the metadata names, checked against its id. */
static void data_read(enum pep_result r, const struct pep_item *items, size_t n, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume_answer(&op->p))
		return;
	struct av_state *as = op->as;
	struct host *h = as->host;
	const struct pep_item *it = NULL;
	for (size_t i = 0; r == PEP_OK && i < n && it == NULL; i++)
		if (strcmp(items[i].id, op->id) == 0)
			it = &items[i];
	if (it != NULL && xml_is(it->payload, "data", NS_AVATAR_DATA))
		op->image = decode_folded(xml_text(it->payload), &op->image_len);
	char *hash = op->image != NULL ? sha1_hex(op->image, op->image_len) : NULL;
	bool ok = hash != NULL && strcasecmp(hash, op->id) == 0;
	free(hash);
	if (!ok) {
		if (r != PEP_OK && r != PEP_NOT_FOUND)
			log_pep(as, op->user, "reading the avatar data", r);
		else
			log_info("avatar %s: the avatar metadata of %s names %s, which the data node does "
			         "not hold (or whose SHA-1 differs); the vCard keeps its photo",
			         h->name, op->user, op->id);
		op_free(&op->p);
		return;
	}
	pending_wait_storage(&op->p, storage_vcard_get(host_store(h, STORAGE_AREA_VCARD), h->name, op->user,
	                                               vcard_read_for_pep, op));
}

/* A client published metadata (storage hosts): the vCard follows. */
static void vcard_from_pep(struct av_state *as, const char *user, const struct xml_node *metadata)
{
	struct host *h = as->host;
	struct av_op *op = av_op_new(as, user);
	const struct xml_node *info = metadata_info(metadata);
	if (info == NULL) {
		pending_wait_storage(&op->p, storage_vcard_get(host_store(h, STORAGE_AREA_VCARD), h->name,
		                                               op->user, vcard_read_for_pep, op));
		return;
	}
	op->id = xstrdup(xml_attr(info, "id"));
	const char *type = xml_attr(info, "type");
	op->type = type != NULL ? xstrdup(type) : NULL;
	pending_wait_answer(&op->p);
	enum pep_result r = pep_items(h, op->user, NS_AVATAR_DATA, data_read, op);
	if (r != PEP_OK) {
		log_pep(as, user, "reading the avatar data", r);
		op_free(&op->p);
	}
}

/* The directory's vCard (hosts with vCards from LDAP): its photo is the
 * avatar. */
static void directory_read(enum storage_result res, const struct xml_node *vcard, void *ctx)
{
	struct av_op *op = ctx;
	if (!pending_resume(&op->p))
		return;
	if (res == STORAGE_OK)
		pep_from_vcard(op->as, op->user, vcard, false);
	else
		log_warning("avatar %s: the vCard of %s cannot be read from the directory (%s); the "
		            "avatar nodes keep what a client published until the next read",
		            op->as->host->name, op->user, storage_result_str(res));
	op_free(&op->p);
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
			struct xml_node *vcard = builtin_parse_stored(text, "vCard", NS_VCARD);
			if (vcard != NULL) {
				hash = avatar_photo_hash(vcard);
				/* an account from before the conversion: the photo
				 * becomes the PEP avatar when there is none */
				if (*hash != '\0')
					pep_from_vcard(as, op->user, vcard, true);
			}
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
		pep_from_vcard(as, op->user, vcard, false); /* the directory's photo is the avatar */
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
		struct av_op *op = av_op_new(as, u->e.user);
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
	if (!as->self_write)
		pep_from_vcard(as, hv->user, hv->vcard, false);
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

/* A publish to a user's PEP node: a client's new avatar metadata. */
static enum hook_result avatar_pep(struct host *h, void *args, void *ctx)
{
	struct av_state *as = ctx;
	struct hook_pep *hp = args;
	if ((hp->origin != NULL && strcmp(hp->origin, AV_ORIGIN) == 0) || hp->payload == NULL ||
	    strcmp(hp->node, NS_AVATAR_METADATA) != 0)
		return HOOK_CONTINUE;
	if (!as->ldap) {
		vcard_from_pep(as, hp->user, hp->payload);
		return HOOK_CONTINUE;
	}
	/* the directory's photo goes back over the client's */
	struct av_op *op = av_op_new(as, hp->user);
	pending_wait(&op->p, vcard_ldap_fetch(h, op->user, directory_read, op), cancel_fetch);
	if (op->p.call == NULL)
		op_free(&op->p);
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
	hook_add(h, HOOK_PEP_PUBLISHED, 50, avatar_pep, as);
	host_add_user_feature(h, NS_PEP_VCARD_CONVERSION);
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
	hook_remove(h, HOOK_PEP_PUBLISHED, avatar_pep, as);
	host_remove_user_feature(h, NS_PEP_VCARD_CONVERSION);
	user_cache_stop(&as->users); /* cancels the reads of the cache */
	pending_stop(&as->ops);
	free(as);
}

const struct module_def mod_avatar = {
	.name = "avatar",
	.description = "XEP-0153 vCard-based avatars: the hash of the vCard photo in the user's "
	               "presence, sent again when the vCard changes; XEP-0398: the vCard photo "
	               "and the XEP-0084 PEP avatar kept in step",
	.options = avatar_options,
	.settings_size = sizeof(struct avatar_settings),
	.default_enabled = true,
	.start = avatar_start,
	.stop = avatar_stop,
};
