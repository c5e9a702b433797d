/* Shared between the files of config/ only. */
#ifndef MT_CONFIG_INT_H
#define MT_CONFIG_INT_H

#include "mt_config.h"

/* Sets one table key from text; `source` prefixes error messages. */
int mt_config__set(struct mt_config *cfg, const struct mt_config_key *k, const char *v,
                   const char *source, char *err, size_t errsz);
/* Frees rules, metrics and watch globs. */
void mt_config__free_sections(struct mt_config *cfg);

#endif
