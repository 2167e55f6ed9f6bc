/*
 * Ad-hoc commands (XEP-0050) served by the server JID of a host, with data
 * forms (XEP-0004).  mod_adhoc owns the protocol: discovery under the node
 * http://jabber.org/protocol/commands, sessions (sessionid), the actions
 * execute/next/complete/cancel, and the admin check; other modules register
 * commands with adhoc_register while they run.  Loop thread.
 *
 * A command runs in stages.  Its run function is called for the first
 * execute (req->stage 0, req->form usually NULL) and again for each submit
 * (req->stage 1, 2, ...; req->form is the submitted form).  It answers each
 * call exactly once, possibly later (from a storage or auth callback), with
 * adhoc_form (another stage: the session stays), adhoc_done (the command
 * completed) or adhoc_fail (an error; the session ends).  A command that
 * waits keeps its storage/auth request in req->storage / req->auth, so
 * that a module stop cancels it; it clears the field before answering.
 */
#ifndef PARLEY_MODULES_ADHOC_H
#define PARLEY_MODULES_ADHOC_H

#include "server/config.h"
#include "server/stanza.h"
#include "lib/i18n.h"

#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define NS_ADMIN "http://jabber.org/protocol/admin"

struct host;
struct adhoc_request;
struct storage_req;
struct auth_req;

typedef void adhoc_run_fn(struct adhoc_request *req, void *ctx);

struct adhoc_command {
	const char *node; /* e.g. "http://jabber.org/protocol/admin#add-user" */
	const char *name; /* human-readable, shown in the command list */
	bool admin_only;  /* only the host's admins (and whom its registration's access
	                   * function lets in) see and run it (else <forbidden/>) */
	adhoc_run_fn *run;
};

struct adhoc_request {
	struct host *host;
	const struct jid *from; /* the requester (full JID) */
	const struct adhoc_command *cmd;
	unsigned stage;              /* 0: first execute; then one more per submit */
	const struct xml_node *form; /* the submitted <x xmlns='jabber:x:data'/>, or NULL */
	void *ctx;                   /* the registration's ctx */
	/* A command's work in flight (cancelled when mod_adhoc stops). */
	struct storage_req *storage;
	struct auth_req *auth;
	/* A command's own data for this request, freed with data_free after
	 * the answer (or at a stop). */
	void *data;
	void (*data_free)(void *data);
	/* private */
	struct iq_request *iq;
	char *sessionid;
	struct adhoc_state *ad;
	struct adhoc_request *next;
};

/* Register cmd (not copied: it must outlive the registration) on h, where
 * mod_adhoc runs.  -1 with *error_r when mod_adhoc does not run on h or
 * the node is taken. */
int adhoc_register(struct host *h, const struct adhoc_command *cmd, void *ctx, char **error_r);
void adhoc_unregister(struct host *h, const char *node);
/* The same for the n commands of table, all or none: on a failure the ones
 * registered so far are unregistered. */
int adhoc_register_all(struct host *h, const struct adhoc_command *table, size_t n, void *ctx,
                       char **error_r);
/* Whether from (a full JID, not a host admin) may see and run an
 * admin_only command registered with ctx: the admins of a service the
 * host runs besides its own admins.  Called for every listing and every
 * step, so it is cheap; the command itself still checks what from may
 * touch. */
typedef bool adhoc_access_fn(struct host *h, const struct jid *from, void *ctx);
/* adhoc_register_all for admin_only commands that access opens to more
 * than the host's admins. */
int adhoc_register_all_access(struct host *h, const struct adhoc_command *table, size_t n,
                              adhoc_access_fn *access, void *ctx, char **error_r);
void adhoc_unregister_all(struct host *h, const struct adhoc_command *table, size_t n);

/* Answers (exactly one per call of run). */
/* Show form (a <x type='form'/>; copied) and wait for the next submit;
 * last: the next submit completes the command (actions: complete only). */
void adhoc_form(struct adhoc_request *req, const struct xml_node *form, bool last);
/* The texts of the forms and notes these send are translated into the
 * request's xml:lang (the <command/>'s, else the <iq/>'s), which the
 * <command/> of the reply then carries.
 * Completed: note (may be NULL) as an info note, result (may be NULL) a
 * <x type='result'/> form (copied). */
void adhoc_done(struct adhoc_request *req, const char *note, const struct xml_node *result);
void adhoc_fail(struct adhoc_request *req, enum stanza_error e, const char *text);

/* ---- data forms (XEP-0004) ------------------------------------------------ */
/* A new <x xmlns='jabber:x:data' type=type/> with a title, instructions
 * (may be NULL) and, when form_type is not NULL, the hidden FORM_TYPE field. */
struct xml_node *form_new(const char *type, const char *title, const char *instructions,
                          const char *form_type);
/* Add a field; value may be NULL.  Returns the <field/>. */
struct xml_node *form_add_field(struct xml_node *form, const char *var, const char *type, const char *label,
                                const char *value, bool required);
void form_field_add_value(struct xml_node *field, const char *value);
/* Translate form's title, instructions and the labels of its fields and
 * options (never values) into xml_lang (lib/i18n.h), in place.  Returns
 * the tag of the language the texts are now in ("en" when no catalogue
 * has xml_lang or none of them).  The labels are English literals given
 * to form_new and form_add_field (make update-po collects those) or
 * marked N_(). */
const char *form_translate(struct xml_node *form, const char *xml_lang);
/* The first value of field var in a submitted form, or NULL. */
const char *form_value(const struct xml_node *form, const char *var);
/* Every non-empty value of field var (jid-multi, list-multi; a text-multi
 * that lists names), appended to out. */
void form_values(const struct xml_node *form, const char *var, struct strlist *out);
/* A text-multi field var as one text: its values joined by newlines, empty
 * ones too (an empty line, XEP-0004 §3.3).  "" when the form has no such
 * field.  Malloc'd. */
char *form_text(const struct xml_node *form, const char *var);
/* Add text to field as text-multi values, one per line, empty lines
 * kept: what form_text reads back as text. */
void form_field_add_lines(struct xml_node *field, const char *text);

#endif
