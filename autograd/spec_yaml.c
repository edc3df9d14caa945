/* autograd/spec_yaml.c: reading values out of a libyaml document for the
 * spec loader. libyaml converts nothing: every scalar is text, so this file
 * decides what is an integer, a float, a boolean or a string (YAML 1.2 core
 * schema, with quoted scalars always strings), finds keys in mappings and
 * rejects duplicate keys, which libyaml accepts silently. */
#include "spec_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

yaml_node_t *spec_node(spec_loader *ld, int id)
{
    return yaml_document_get_node(ld->doc, id);
}

const char *spec_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int spec_is_null(const yaml_node_t *n)
{
    if (!n || !is_plain(n)) return 0;
    const char *s = spec_scalar(n);
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* Integer text: optional sign, decimal digits only. */
static int text_int(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return 0;
    *out = v;
    return 1;
}

/* Float text: decimal/exponent notation (no hex, inf or nan). */
static int text_float(const char *s, double *out)
{
    if (!*s || strpbrk(s, "xXpPiInN_")) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int text_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *out = 1, 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *out = 0, 1;
    return 0;
}

const char *spec_describe(const yaml_node_t *n, char *buf, size_t len)
{
    int64_t i;
    double f;
    int b;
    if (!n || spec_is_null(n)) return "nothing";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    const char *s = spec_scalar(n);
    if (is_plain(n) && (text_int(s, &i) || text_float(s, &f) || text_bool(s, &b)))
        snprintf(buf, len, "'%.60s'", s);
    else
        snprintf(buf, len, "%s'%.60s'", is_plain(n) ? "" : "the quoted string ", s);
    return buf;
}

yaml_node_t *spec_map_get(spec_loader *ld, const yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = spec_scalar(spec_node(ld, p->key));
        if (k && !strcmp(k, key)) return spec_node(ld, p->value);
    }
    return NULL;
}

mg_status spec_check_map(spec_loader *ld, const yaml_node_t *m, const char *what)
{
    char buf[96];
    if (!m || spec_is_null(m)) return MG_OK;
    if (m->type != YAML_MAPPING_NODE)
        return spec_fail(ld, m, MG_ERR_PARSE, "%s must be a mapping (key: value), got %s", what,
                         spec_describe(m, buf, sizeof buf));
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = spec_node(ld, p->key);
        if (!spec_scalar(k))
            return spec_fail(ld, k, MG_ERR_PARSE, "keys in %s must be plain names, got %s", what,
                             spec_describe(k, buf, sizeof buf));
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k0 = spec_node(ld, q->key);
            if (spec_scalar(k0) && !strcmp(spec_scalar(k0), spec_scalar(k)))
                return spec_fail(ld, k, MG_ERR_PARSE,
                                 "duplicate key '%s' in %s (first given at line %d, column %d)",
                                 spec_scalar(k), what, (int)k0->start_mark.line + 1,
                                 (int)k0->start_mark.column + 1);
        }
    }
    return MG_OK;
}

mg_status spec_get_int(spec_loader *ld, const yaml_node_t *n, const char *key, int64_t *out)
{
    char buf[96];
    if (is_plain(n) && text_int(spec_scalar(n), out)) return MG_OK;
    double f;
    if (is_plain(n) && text_float(spec_scalar(n), &f) && f == floor(f) && fabs(f) < 9e15) {
        *out = (int64_t)f; /* 1.0e3 is an integer too */
        return MG_OK;
    }
    return spec_fail(ld, n, MG_ERR_PARSE, "'%s': expected an integer, got %s", key,
                     spec_describe(n, buf, sizeof buf));
}

mg_status spec_get_float(spec_loader *ld, const yaml_node_t *n, const char *key, double *out)
{
    char buf[96];
    if (is_plain(n) && text_float(spec_scalar(n), out)) return MG_OK;
    return spec_fail(ld, n, MG_ERR_PARSE, "'%s': expected a number, got %s", key,
                     spec_describe(n, buf, sizeof buf));
}

mg_status spec_get_bool(spec_loader *ld, const yaml_node_t *n, const char *key, int *out)
{
    char buf[96];
    if (is_plain(n) && text_bool(spec_scalar(n), out)) return MG_OK;
    return spec_fail(ld, n, MG_ERR_PARSE, "'%s': expected true or false, got %s", key,
                     spec_describe(n, buf, sizeof buf));
}

mg_status spec_get_str(spec_loader *ld, const yaml_node_t *n, const char *key, const char **out)
{
    char buf[96];
    if (spec_scalar(n) && !spec_is_null(n)) {
        *out = spec_scalar(n);
        return MG_OK;
    }
    return spec_fail(ld, n, MG_ERR_PARSE, "'%s': expected a string, got %s", key,
                     spec_describe(n, buf, sizeof buf));
}

const char *spec_join_names(const char *const *names, int n, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k + 2 < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? ", " : "", names[i]);
    return buf;
}

const char *spec_suggest(const char *name, const char *const *cands, int n)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < n; i++) {
        int d = mg_edit_distance(name, cands[i]);
        if (d < best_d) best_d = d, best = cands[i];
    }
    int limit = (int)strlen(name) / 3 + 1;
    if (limit < 2) limit = 2;
    return best && best_d <= limit && best_d < (int)strlen(name) ? best : NULL;
}

mg_status spec_unknown_key(spec_loader *ld, const yaml_node_t *key, const char *where,
                           const char *const *cands, int n)
{
    const char *name = spec_scalar(key);
    const char *hint = spec_suggest(name, cands, n);
    if (hint)
        return spec_fail(ld, key, MG_ERR_PARSE, "unknown key '%s' in %s; did you mean '%s'?", name,
                         where, hint);
    char list[512];
    return spec_fail(ld, key, MG_ERR_PARSE, "unknown key '%s' in %s (valid keys: %s)", name, where,
                     n ? spec_join_names(cands, n, list, sizeof list) : "none");
}
