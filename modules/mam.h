/*
 * Message archives (XEP-0313 urn:xmpp:mam:2) shared by mod_mam (user
 * archives) and the MUC service (room archives): archive ids, the
 * XEP-0359 stanza-id they give, and answering a query of an archive.
 * Loop thread.
 *
 * An archive id is microseconds since the epoch, strictly increasing in
 * this process (mam_next_id), so it is also the message's time and the
 * archive's order.  Its stanza-id is the id in decimal.
 */
#ifndef PARLEY_MODULES_MAM_H
#define PARLEY_MODULES_MAM_H

#include <stdbool.h>
#include <stdint.h>

#define NS_MAM "urn:xmpp:mam:2"
#define NS_MAM_EXTENDED "urn:xmpp:mam:2#extended"
#define NS_SID "urn:xmpp:sid:0"

struct host;
struct iq_request;
struct xml_node;

/* A new archive id: max(now in microseconds, the last one + 1). */
int64_t mam_next_id(void);
/* The id a stanza-id or RSM UID names; false when s is not one. */
bool mam_id_parse(const char *s, int64_t *id_r);

/* A copy of msg (a reference for the caller) for the archive of by (a bare
 * JID): every <stanza-id/> with by='by' is removed (XEP-0359 §4: only the
 * archive itself may claim one), and when id is nonzero a new one naming
 * id is added. */
struct xml_node *mam_stamp_copy(const struct xml_node *msg, const char *by, int64_t id);
/* Whether msg carries a <stanza-id/> by 'by'. */
bool mam_has_stanza_id(const struct xml_node *msg, const char *by);

/* Answer iq, an <iq/> get or set with a <query xmlns='urn:xmpp:mam:2'/>
 * sent by from to a room (room: the room's bare JID, which owns the
 * archive; h: the room's virtual host), as the room: the form (get) or a
 * page of results from room, then the iq result (set).  The caller has
 * checked that from may read the archive.  The answer is routed later,
 * from the storage callback; <service-unavailable/> at once when mod_mam
 * does not run on h. */
struct jid;
void mam_room_query(struct host *h, struct xml_node *iq, const struct jid *from, const struct jid *room);
/* Store msg (a groupchat message as the room fans it out, with from =
 * room/nick) in the archive of room, under id; nick is the sender's. */
void mam_room_store(struct host *h, const struct jid *room, const char *nick, const struct xml_node *msg,
                    int64_t id);
/* Remove the archive of room (destroyed). */
void mam_room_delete(struct host *h, const struct jid *room);
/* Whether mod_mam runs on h and new rooms are archived by default
 * (its muc option); *running_r tells whether it runs. */
bool mam_room_default(const struct host *h, bool *running_r);

#endif
