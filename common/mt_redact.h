/* mt_redact: keeping secrets out of everything metrictap stores.
 *
 * A name looks like a secret when one of its word parts is KEY, TOKEN, SECRET,
 * PASSWORD, PASSWD, CREDENTIAL(S), AUTH (or a fused form such as APIKEY,
 * ACCESSKEY, AUTHTOKEN, PASSPHRASE), case-insensitively.  Word parts are split
 * at every non-alphanumeric character and at lower-to-upper camelCase
 * boundaries: AWS_SECRET_ACCESS_KEY, api-key, --hf_token, apiKey match;
 * TOKENIZER, MONKEY, max_tokens, PWD do not.
 *
 * The value of such a name becomes MT_REDACTED.  Credentials inside URLs
 * (scheme://user:pass@host) become scheme://[REDACTED]@host wherever they
 * appear in a value.
 *
 * Every function returning char* or char** returns fresh heap memory the
 * caller owns (free(), or mt_redact_strv_free for arrays) and aborts on
 * out-of-memory (agent and CLI only; the shim does not link this). */
#ifndef MT_REDACT_H
#define MT_REDACT_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

#define MT_REDACTED "[REDACTED]"

/* Does the name (len bytes, leading dashes allowed) look like a secret? */
bool mt_redact_is_secret_name(const char *name, size_t len);

/* A copy of s with every URL's userinfo replaced by [REDACTED]. */
char *mt_redact_url(const char *s);

/* A copy of url with its userinfo removed (https://u:p@host/x -> https://host/x),
 * for git remotes.  A user name without a password on ssh-like schemes
 * (ssh://git@host) and scp-style remotes (git@host:org/repo) are kept. */
char *mt_redact_strip_url(const char *url);

/* Copies of an environment array ("NAME=value" strings, NULL-terminated) and
 * of an argument vector (NULL-terminated): secret values redacted, URL
 * credentials redacted in every other value.  Arguments understood:
 * `--api-key X`, `-token X`, `--token=X`, `PASSWORD=x`. */
char **mt_redact_env(char *const envp[]);
char **mt_redact_argv(char *const argv[]);
void mt_redact_strv_free(char **v);

/* In place: members of objects whose names look like secrets get the string
 * value [REDACTED] (whatever their type); URL credentials in every string are
 * redacted.  Accepts NULL. */
void mt_redact_json(struct cJSON *item);

#endif
