/* autograd/plugin.c: the plugin loader (plugin.h). Finds a plugin's shared
 * object on the search path, dlopens it, checks for its init symbol and calls
 * it with the context's registry and a host table. Ops and layer types
 * registered during init are stamped with the plugin's name as origin, so a
 * failed init (or a failed registration it ignored) can be undone exactly:
 * they are removed and the library is closed again. Loaded plugins are kept
 * in ctx->plugins and closed by mg_ctx_free after the registry is gone. */
#include "internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef MG_PLUGIN_DIR
#define MG_PLUGIN_DIR ""
#endif
#ifndef MG_BUILD_PLUGIN_DIR
#define MG_BUILD_PLUGIN_DIR ""
#endif

#define PATH_LEN 4096

typedef struct plugin_rec {
    char *name;          /* the origin its ops and layers carry */
    char *path;          /* the file loaded; NULL for a static plugin */
    void *handle;        /* dlopen handle; NULL for a static plugin */
} plugin_rec;

typedef struct plugin_list {
    plugin_rec *v;
    int n, cap;
    mg_host_api host;
    mg_status reg_fail;  /* first failed registration through the host table during init */
} plugin_list;

/* ---- the list and the host table ------------------------------------------ */

static void list_free(mg_ctx *ctx)
{
    plugin_list *pl = ctx->plugins;
    for (int i = pl ? pl->n - 1 : -1; i >= 0; i--) {
        if (pl->v[i].handle) dlclose(pl->v[i].handle);
        mg_free(pl->v[i].name);
        mg_free(pl->v[i].path);
    }
    if (pl) mg_free(pl->v);
    mg_free(pl);
    ctx->plugins = NULL;
}

/* Remembers the first registration that failed while a plugin initialises. */
static void note_fail(mg_registry *r, mg_status s)
{
    plugin_list *pl = r && r->ctx ? r->ctx->plugins : NULL;
    if (pl && s != MG_OK && pl->reg_fail == MG_OK) pl->reg_fail = s;
}

static mg_status host_add_op(mg_registry *r, const mg_op_def *def)
{
    mg_status s = mg_registry_add_op(r, def);
    note_fail(r, s);
    return s;
}

static mg_status host_add_layer(mg_registry *r, const mg_layer_def *def)
{
    mg_status s = mg_registry_add_layer(r, def);
    note_fail(r, s);
    return s;
}

/* ctx's plugin list, created with its host table on first use. */
static plugin_list *list_get(mg_ctx *ctx)
{
    if (ctx->plugins) return ctx->plugins;
    plugin_list *pl = mg_calloc(1, sizeof *pl);
    if (!pl) return NULL;
    pl->host = (mg_host_api){
        .struct_size = sizeof(mg_host_api), .abi_version = MG_ABI_VERSION,
        .version = MG_VERSION_STRING, .ctx = ctx, .add_op = host_add_op,
        .add_layer = host_add_layer, .fail = mg_ctx_fail, .log = mg_ctx_log,
    };
    ctx->plugins = pl;
    ctx->plugins_free = list_free;
    return pl;
}

static plugin_rec *find_by_name(plugin_list *pl, const char *name)
{
    for (int i = 0; i < pl->n; i++)
        if (strcmp(pl->v[i].name, name) == 0) return &pl->v[i];
    return NULL;
}

static plugin_rec *find_by_handle(plugin_list *pl, void *handle)
{
    for (int i = 0; i < pl->n; i++)
        if (pl->v[i].handle == handle) return &pl->v[i];
    return NULL;
}

/* ---- init with rollback ---------------------------------------------------- */

/* What a failed init returns: ABI and name clashes keep their codes, every
 * other failure is MG_ERR_PLUGIN. */
static mg_status init_status(mg_status s)
{
    return s == MG_ERR_ABI || s == MG_ERR_EXISTS ? s : MG_ERR_PLUGIN;
}

/* Removes what `name` registered and reports the failure, keeping the
 * message the plugin (or the registry) gave. */
static mg_status rollback(mg_ctx *ctx, const char *name, mg_status s, int ignored)
{
    char inner[MG_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", ctx->err);
    mg_registry_remove_ops(ctx->reg, name);
    mg_registry_remove_layers(ctx->reg, name);
    if (!inner[0]) snprintf(inner, sizeof inner, "init returned %s without a message", mg_status_name(s));
    return mg_ctx_fail(ctx, init_status(s), "plugin '%s' failed to initialise%s: %s%s", name,
                       ignored ? " (a registration failed, though init returned MG_OK)" : "", inner,
                       "; everything it registered was removed");
}

/* Calls init with r->origin set to `name`. On any failure, including a
 * failed host->add_op/add_layer that init ignored, undoes its registrations. */
static mg_status run_init(mg_ctx *ctx, plugin_list *pl, const char *name, mg_plugin_init_fn init)
{
    mg_registry *r = ctx->reg;
    char *saved_origin = r->origin;
    mg_status saved_fail = pl->reg_fail;
    if (!(r->origin = mg_strdup(name))) {
        r->origin = saved_origin;
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory loading plugin '%s'", name);
    }
    pl->reg_fail = MG_OK;
    ctx->err[0] = 0;
    mg_status s = init(r, &pl->host);
    mg_status rf = pl->reg_fail;
    mg_free(r->origin);
    r->origin = saved_origin;
    pl->reg_fail = saved_fail;
    if (s != MG_OK) return rollback(ctx, name, s, 0);
    if (rf != MG_OK) return rollback(ctx, name, rf, 1);
    return MG_OK;
}

/* Runs init and records the plugin (taking ownership of path, which may be
 * NULL). The record's storage is secured around init, so a plugin is either
 * recorded with its registrations or leaves none; on failure `handle` is
 * closed and `path` freed. */
static mg_status install(mg_ctx *ctx, plugin_list *pl, const char *name, char *path, void *handle,
                         mg_plugin_init_fn init)
{
    int ops0 = mg_registry_num_ops(ctx->reg), layers0 = mg_registry_num_layers(ctx->reg);
    char *nm = mg_strdup(name);
    mg_status s = nm ? mg_grow((void **)&pl->v, &pl->cap, pl->n + 1, sizeof *pl->v) : MG_ERR_NOMEM;
    if (s != MG_OK) s = mg_ctx_fail(ctx, s, "out of memory loading plugin '%s'", name);
    if (s == MG_OK) s = run_init(ctx, pl, name, init);
    /* An init that loaded another plugin used the reserved slot. */
    if (s == MG_OK && mg_grow((void **)&pl->v, &pl->cap, pl->n + 1, sizeof *pl->v) != MG_OK) {
        mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory recording the plugin");
        s = rollback(ctx, name, MG_ERR_NOMEM, 0);
    }
    if (s != MG_OK) {
        if (handle) dlclose(handle);
        mg_free(path);
        mg_free(nm);
        return s;
    }
    pl->v[pl->n++] = (plugin_rec){nm, path, handle};
    mg_ctx_log(ctx, MG_LOG_INFO, "loaded plugin '%s'%s%s: %d ops, %d layer types", name,
               path ? " from " : "", path ? path : " (static)",
               mg_registry_num_ops(ctx->reg) - ops0, mg_registry_num_layers(ctx->reg) - layers0);
    return MG_OK;
}

/* ---- finding the file ------------------------------------------------------- */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A plugin name: letters, digits, '_', '-', '.'; not "builtin". */
static int valid_name(const char *s)
{
    if (!s || !s[0] || strcmp(s, "builtin") == 0) return 0;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

typedef struct search {
    const char *name;
    char found[PATH_LEN];
    char dirs[PATH_LEN];  /* the directories searched, for the error message */
} search;

/* Tries "<dir>/<name>.so" and "<dir>/lib<name>.so"; 1 if one exists. */
static int try_dir(search *sr, const char *dir, size_t dlen)
{
    size_t used = strlen(sr->dirs);
    snprintf(sr->dirs + used, sizeof sr->dirs - used, "%s%.*s", used ? ", " : "", (int)dlen, dir);
    static const char *const pat[] = {"%.*s/%s.so", "%.*s/lib%s.so"};
    for (int i = 0; i < 2; i++) {
        snprintf(sr->found, sizeof sr->found, pat[i], (int)dlen, dir, sr->name);
        if (is_file(sr->found)) return 1;
    }
    return 0;
}

/* Each directory of the colon-separated MINTGRAD_PLUGIN_PATH in order. */
static int try_env(search *sr)
{
    const char *p = getenv("MINTGRAD_PLUGIN_PATH");
    while (p && *p) {
        size_t len = strcspn(p, ":");
        if (len && try_dir(sr, p, len)) return 1;
        p += len + (p[len] == ':');
    }
    return 0;
}

/* The build tree: libtool puts plugins/<name>/<name>.la's .so in .libs. */
static int try_build_tree(search *sr)
{
    if (!MG_BUILD_PLUGIN_DIR[0]) return 0;
    char dir[PATH_LEN];
    snprintf(dir, sizeof dir, "%s/%s/.libs", MG_BUILD_PLUGIN_DIR, sr->name);
    return try_dir(sr, dir, strlen(dir));
}

static mg_status find_file(mg_ctx *ctx, search *sr)
{
    sr->dirs[0] = 0;
    if (try_env(sr) || try_build_tree(sr) ||
        (MG_PLUGIN_DIR[0] && try_dir(sr, MG_PLUGIN_DIR, strlen(MG_PLUGIN_DIR))))
        return MG_OK;
    return mg_ctx_fail(ctx, MG_ERR_NOTFOUND,
                       "plugin '%s' not found: no %s.so or lib%s.so in %s (add a directory with "
                       "MINTGRAD_PLUGIN_PATH, or pass a path)",
                       sr->name, sr->name, sr->name, sr->dirs[0] ? sr->dirs : "(no directories)");
}

/* The plugin name of a path (its file name without "lib" and ".so") or of a
 * name (without ".so"). */
static void plugin_name(const char *name_or_path, int is_path, char *out, size_t n)
{
    const char *base = strrchr(name_or_path, '/');
    base = base ? base + 1 : name_or_path;
    if (is_path && strncmp(base, "lib", 3) == 0 && base[3] && strcmp(base + 3, ".so") != 0) base += 3;
    size_t len = strlen(base);
    if (len > 3 && strcmp(base + len - 3, ".so") == 0) len -= 3;
    snprintf(out, n, "%.*s", (int)len, base);
}

/* Loading a plugin name that is loaded is a no-op (the first one stays). */
static mg_status already_loaded(mg_ctx *ctx, const plugin_rec *p, const char *asked)
{
    mg_ctx_log(ctx, MG_LOG_DEBUG, "plugin '%s' is already loaded%s%s; '%s' not loaded again", p->name,
               p->path ? " from " : " (static)", p->path ? p->path : "", asked);
    return MG_OK;
}

/* ---- loading ------------------------------------------------------------------ */

/* dlopens path and finds the init symbol; *handle is NULL on failure. */
static mg_status open_lib(mg_ctx *ctx, const char *name, const char *path, void **handle,
                          mg_plugin_init_fn *init)
{
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
        const char *e = dlerror();
        return mg_ctx_fail(ctx, MG_ERR_PLUGIN, "plugin '%s': cannot load %s: %s", name, path,
                           e ? e : "unknown dlopen error");
    }
    dlerror();
    void *sym = dlsym(*handle, MG_PLUGIN_INIT_SYMBOL);
    if (sym) {
        *(void **)init = sym; /* POSIX: a data pointer from dlsym is the function */
        return MG_OK;
    }
    dlclose(*handle);
    *handle = NULL;
    return mg_ctx_fail(ctx, MG_ERR_PLUGIN,
                       "plugin '%s': %s exports no %s() function (is it a mintgrad plugin? "
                       "declare it with extern \"C\" linkage and default visibility)",
                       name, path, MG_PLUGIN_INIT_SYMBOL);
}

/* Loads the file at `path` as plugin `name`; takes ownership of path. */
static mg_status load_file(mg_ctx *ctx, plugin_list *pl, const char *name, char *path)
{
    void *handle;
    mg_plugin_init_fn init = NULL;
    mg_status s = open_lib(ctx, name, path, &handle, &init);
    if (s != MG_OK) {
        mg_free(path);
        return s;
    }
    if (find_by_handle(pl, handle)) { /* the same file under another name */
        dlclose(handle);
        mg_free(path);
        return MG_OK;
    }
    return install(ctx, pl, name, path, handle, init);
}

/* Finds the file of plugin `name`: name_or_path itself if it is a path,
 * else through the search path. The result is in sr->found. */
static mg_status resolve(mg_ctx *ctx, const char *name_or_path, int is_path, const char *name, search *sr)
{
    if (!valid_name(name))
        return mg_ctx_fail(ctx, MG_ERR_ARG,
                           "'%s' is not a valid plugin name (letters, digits, '_', '-', '.'; not 'builtin')",
                           name);
    if (!is_path) {
        sr->name = name;
        return find_file(ctx, sr);
    }
    if (!is_file(name_or_path))
        return mg_ctx_fail(ctx, MG_ERR_NOTFOUND, "plugin file '%s' does not exist", name_or_path);
    snprintf(sr->found, sizeof sr->found, "%s", name_or_path);
    return MG_OK;
}

mg_status mg_plugin_load(mg_ctx *ctx, const char *name_or_path)
{
    if (!ctx) return MG_ERR_ARG;
    if (!name_or_path || !name_or_path[0])
        return mg_ctx_fail(ctx, MG_ERR_ARG, "mg_plugin_load: no plugin name or path given");
    plugin_list *pl = list_get(ctx);
    if (!pl) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory loading plugin '%s'", name_or_path);
    search sr = {0};
    char name[256];
    int is_path = strchr(name_or_path, '/') != NULL;
    plugin_name(name_or_path, is_path, name, sizeof name);
    plugin_rec *old = is_path ? NULL : find_by_name(pl, name);
    if (old) return already_loaded(ctx, old, name_or_path);
    mg_status s = resolve(ctx, name_or_path, is_path, name, &sr);
    if (s != MG_OK) return s;
    if ((old = find_by_name(pl, name))) return already_loaded(ctx, old, name_or_path);
    char *owned = mg_strdup(sr.found);
    if (!owned) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory loading plugin '%s'", name);
    return load_file(ctx, pl, name, owned);
}

mg_status mg_plugin_register_static(mg_ctx *ctx, const char *name, mg_plugin_init_fn init)
{
    if (!ctx) return MG_ERR_ARG;
    if (!valid_name(name) || !init)
        return mg_ctx_fail(ctx, MG_ERR_ARG,
                           "mg_plugin_register_static: needs a valid name (got '%s') and an init function",
                           name ? name : "(null)");
    plugin_list *pl = list_get(ctx);
    if (!pl) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory registering plugin '%s'", name);
    if (find_by_name(pl, name)) return already_loaded(ctx, find_by_name(pl, name), name);
    return install(ctx, pl, name, NULL, NULL, init);
}

int mg_plugin_count(const mg_ctx *ctx)
{
    const plugin_list *pl = ctx ? ctx->plugins : NULL;
    return pl ? pl->n : 0;
}

const char *mg_plugin_name(const mg_ctx *ctx, int i)
{
    const plugin_list *pl = ctx ? ctx->plugins : NULL;
    return pl && i >= 0 && i < pl->n ? pl->v[i].name : NULL;
}

const mg_host_api *mg_plugin_host(mg_ctx *ctx)
{
    plugin_list *pl = ctx ? list_get(ctx) : NULL;
    return pl ? &pl->host : NULL;
}
