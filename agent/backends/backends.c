/* The uploader's backends by name.  A new backend is one file in this folder
 * that defines a `const struct mt_upload_backend` (mt_upload_backend.h), and
 * one line here. */
#include <string.h>

#include "../mt_upload_backend.h"

static const struct mt_upload_backend *const backends[] = {
    &mt_mlflow_backend,
    &mt_tensorboard_backend,
    &mt_wandb_backend,
};

const struct mt_upload_backend *mt_upload_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (name && strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

const char *mt_upload_backend_names(void)
{
    return "mlflow, tensorboard, wandb";
}
