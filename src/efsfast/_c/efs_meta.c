/*
 * efs_meta.c -- the $EFS metadata (MS-EFSR 2.2.2): validation of the
 * Version 1 layout (rules R10-R12), recognition of Versions 2 and 3, and a
 * builder for Version 1 values.  Offsets come from efs_layout.h only.
 */
#include <stdlib.h>
#include <string.h>

#include "efs_codec.h"
#include "efs_layout.h"

typedef struct {
    const uint8_t *m;
    uint32_t len;
    unsigned mode;
    efs_error *err;
    efs_offset_map map;
    void *map_ctx;
    uint64_t base;
    efs_entry_fn entry;
    void *ctx;
} mctx;

typedef struct { uint64_t start, end; } span;

static efs_dword mfail(mctx *c, int rule, const char *code, const char *detail,
                       uint64_t moff, efs_dword winerror)
{
    if (moff > c->len) moff = c->len;
    c->err->rule = rule;
    c->err->code = code;
    c->err->detail = detail;
    c->err->offset = c->map ? c->map(c->map_ctx, (uint32_t)moff) : c->base + moff;
    c->err->winerror = winerror;
    return winerror;
}

#define MFAIL(rule, code, detail, off) \
    mfail(c, rule, code, detail, off, EFS_ERROR_INVALID_DATA)

/* Fields inside [lo, hi) must not overlap; a strict reader also refuses an
 * unused run longer than 8 bytes or one that is not zero (MS-EFSR 2.2.2.1). */
static efs_dword check_fields(mctx *c, uint64_t lo, uint64_t hi, span *iv, int n, int gaps)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (iv[i].start < iv[j].end && iv[j].start < iv[i].end)
                return MFAIL(12, "E_META_OVERLAP", "metadata fields overlap",
                             iv[i].start > iv[j].start ? iv[i].start : iv[j].start);
    if (!gaps || c->mode != EFS_MODE_STRICT) return 0;
    for (int i = 1; i < n; i++)          /* insertion sort by start; n <= 4 */
        for (int j = i; j > 0 && iv[j].start < iv[j - 1].start; j--) {
            span t = iv[j]; iv[j] = iv[j - 1]; iv[j - 1] = t;
        }
    uint64_t cur = lo;
    for (int i = 0; i <= n; i++) {
        uint64_t next = i < n ? iv[i].start : hi;
        if (next > cur) {
            if (next - cur > EFS_META_MAX_GAP)
                return MFAIL(12, "E_META_GAP", "more than 8 unused bytes between metadata fields", cur);
            for (uint64_t k = cur; k < next; k++)
                if (c->m[k])
                    return MFAIL(12, "E_META_GAP", "unused metadata bytes are not zero", k);
        }
        if (i < n && iv[i].end > cur) cur = iv[i].end;
    }
    return 0;
}

/* A NUL-terminated UTF-16 string at cert offset `so` inside [0, cl). */
static efs_dword check_string(mctx *c, uint64_t cert, uint32_t cl, uint32_t field,
                              uint32_t so, uint32_t *out_off, uint32_t *out_len, span *iv)
{
    *out_off = *out_len = 0;
    iv->start = iv->end = 0;
    if (so == 0) return 0;
    if (so < EFS_CERT_HDR || so >= cl)
        return MFAIL(12, "E_META_STRING", "a certificate string offset lies outside", cert + field);
    uint64_t i = so;
    while (i + 1 < cl && efs_get16(c->m + cert + i) != 0) i += 2;
    if (i + 1 >= cl)
        return MFAIL(12, "E_META_STRING", "a certificate string is not NUL-terminated inside",
                     cert + so);
    *out_off = (uint32_t)(cert + so);
    *out_len = (uint32_t)(i - so);
    iv->start = cert + so;
    iv->end = cert + i + 2;
    return 0;
}

static efs_dword parse_cert(mctx *c, uint64_t cert, uint32_t cl, efs_key_entry *ke)
{
    const uint8_t *b = c->m + cert;
    uint32_t to = efs_get32(b + EFS_CERT_OFF_THUMB), tl = efs_get32(b + EFS_CERT_OFF_THUMB_LEN);
    uint32_t con = efs_get32(b + EFS_CERT_OFF_CONTAINER);
    uint32_t prov = efs_get32(b + EFS_CERT_OFF_PROVIDER);
    uint32_t disp = efs_get32(b + EFS_CERT_OFF_DISPLAY);
    span iv[4];
    efs_dword rc;

    if (tl == 0 || to < EFS_CERT_HDR || (uint64_t)to + tl > cl)
        return MFAIL(12, "E_META_THUMB", "the thumbprint lies outside its certificate data",
                     cert + EFS_CERT_OFF_THUMB);
    ke->thumb_offset = (uint32_t)(cert + to);
    ke->thumb_length = tl;
    iv[0].start = cert + to;
    iv[0].end = cert + to + tl;
    if ((rc = check_string(c, cert, cl, EFS_CERT_OFF_CONTAINER, con,
                           &ke->container_offset, &ke->container_length, &iv[1])) ||
        (rc = check_string(c, cert, cl, EFS_CERT_OFF_PROVIDER, prov,
                           &ke->provider_offset, &ke->provider_length, &iv[2])) ||
        (rc = check_string(c, cert, cl, EFS_CERT_OFF_DISPLAY, disp,
                           &ke->display_offset, &ke->display_length, &iv[3])))
        return rc;
    if (prov && !con)
        return MFAIL(12, "E_META_STRING", "a provider name without a container name",
                     cert + EFS_CERT_OFF_PROVIDER);
    /* absent strings have empty spans, which overlap nothing */
    return check_fields(c, cert + EFS_CERT_HDR, cert + cl, iv, 4, 0);
}

static efs_dword parse_pki(mctx *c, uint64_t k, uint32_t pl, efs_key_entry *ke)
{
    const uint8_t *b = c->m + k;
    uint32_t so = efs_get32(b + EFS_PKI_OFF_SID), type = efs_get32(b + EFS_PKI_OFF_TYPE);
    uint32_t cl = efs_get32(b + EFS_PKI_OFF_CERT_LEN), co = efs_get32(b + EFS_PKI_OFF_CERT);
    span iv[2];
    int n = 0;
    efs_dword rc;

    if (c->mode == EFS_MODE_STRICT && !efs_all_zero(b + EFS_PKI_OFF_RESERVED, EFS_PKI_RESERVED_LEN))
        return MFAIL(12, "E_META_RESERVED", "public key information Reserved is not zero",
                     k + EFS_PKI_OFF_RESERVED);
    ke->pki_type = type;
    if (type != EFS_PKI_TYPE_CERT) {
        /* 1 (CryptoAPI container) and 2 are legacy forms ntfs-3g lists;
         * only a compatible reader passes them, undecoded. */
        if (c->mode == EFS_MODE_STRICT || (type != 1 && type != 2))
            return MFAIL(12, "E_META_PKI_TYPE", "public key information Type is not 3",
                         k + EFS_PKI_OFF_TYPE);
        return 0;
    }
    if (so) {
        if (so < EFS_PKI_HDR || (uint64_t)so + EFS_SID_HDR > pl)
            return MFAIL(12, "E_META_SID", "the owner SID lies outside its structure",
                         k + EFS_PKI_OFF_SID);
        uint8_t rev = b[so], cnt = b[so + 1];
        uint32_t sl = EFS_SID_HDR + 4u * cnt;
        if (rev != 1 || cnt > EFS_SID_MAX_SUBAUTH || (uint64_t)so + sl > pl)
            return MFAIL(12, "E_META_SID", "the owner SID is malformed", k + so);
        ke->sid_offset = (uint32_t)(k + so);
        ke->sid_length = sl;
        iv[n].start = k + so;
        iv[n++].end = k + so + sl;
    }
    if (cl < EFS_CERT_HDR || co < EFS_PKI_HDR || (uint64_t)co + cl > pl)
        return MFAIL(12, "E_META_CERT", "the certificate data lies outside its structure",
                     k + EFS_PKI_OFF_CERT);
    iv[n].start = k + co;
    iv[n++].end = k + co + cl;
    if ((rc = check_fields(c, k + EFS_PKI_HDR, k + pl, iv, n, 1))) return rc;
    return parse_cert(c, k + co, cl, ke);
}

static efs_dword parse_entry(mctx *c, uint64_t e, uint32_t el, efs_key_entry *ke)
{
    const uint8_t *b = c->m + e;
    uint32_t po = efs_get32(b + EFS_KEY_OFF_PKI), fl = efs_get32(b + EFS_KEY_OFF_FEK_LEN);
    uint32_t fo = efs_get32(b + EFS_KEY_OFF_FEK), flags = efs_get32(b + EFS_KEY_OFF_FLAGS);
    span iv[2];
    efs_dword rc;

    if (fl == 0)
        return MFAIL(12, "E_META_FEK", "the encrypted FEK is empty", e + EFS_KEY_OFF_FEK_LEN);
    if (fo < EFS_KEY_HDR || (uint64_t)fo + fl > el)
        return MFAIL(12, "E_META_FEK", "the encrypted FEK lies outside its key entry",
                     e + EFS_KEY_OFF_FEK);
    if (po < EFS_KEY_HDR || (uint64_t)po + EFS_PKI_HDR > el)
        return MFAIL(12, "E_META_PKI", "the public key information lies outside its key entry",
                     e + EFS_KEY_OFF_PKI);
    uint32_t pl = efs_get32(b + po + EFS_PKI_OFF_LENGTH);
    if (pl < EFS_PKI_HDR || (uint64_t)po + pl > el)
        return MFAIL(12, "E_META_PKI", "the public key information Length is wrong",
                     e + po + EFS_PKI_OFF_LENGTH);
    if (c->mode == EFS_MODE_STRICT && flags > 1)
        return MFAIL(12, "E_META_FLAGS", "key entry Flags is neither 0 nor 1", e + EFS_KEY_OFF_FLAGS);
    iv[0].start = e + po; iv[0].end = e + po + pl;
    iv[1].start = e + fo; iv[1].end = e + fo + fl;
    if ((rc = check_fields(c, e + EFS_KEY_HDR, e + el, iv, 2, 1))) return rc;
    ke->entry_offset = (uint32_t)e;
    ke->entry_length = el;
    ke->flags = flags;
    ke->fek_offset = (uint32_t)(e + fo);
    ke->fek_length = fl;
    return parse_pki(c, e + po, pl, ke);
}

static efs_dword parse_list(mctx *c, uint32_t off, int is_drf, uint32_t *count, span *out)
{
    uint32_t n = efs_get32(c->m + off + EFS_KEYLIST_OFF_COUNT);
    uint64_t p = (uint64_t)off + EFS_KEYLIST_HDR;
    efs_dword rc;
    if (n == 0)
        return MFAIL(12, "E_META_KEYLIST", "a key list has no entries", off);
    for (uint32_t i = 0; i < n; i++) {
        efs_key_entry ke;
        if (p + EFS_KEY_HDR > c->len)
            return MFAIL(12, "E_META_KEYLIST", "a key entry lies past the end of the metadata", p);
        uint32_t el = efs_get32(c->m + p + EFS_KEY_OFF_LENGTH);
        if (el < EFS_KEY_HDR || p + el > c->len)
            return MFAIL(12, "E_META_ENTRY", "a key entry Length is wrong", p);
        memset(&ke, 0, sizeof ke);
        ke.is_drf = is_drf;
        ke.index = i;
        if ((rc = parse_entry(c, p, el, &ke))) return rc;
        if (c->entry && (rc = c->entry(c->ctx, &ke))) {
            c->err->rule = 0;
            c->err->code = "E_CONSUMER";
            c->err->detail = "the consumer aborted";
            c->err->winerror = rc;
            return rc;
        }
        p += el;
    }
    *count = n;
    out->start = off;
    out->end = p;
    return 0;
}

efs_dword efs_meta_parse(const uint8_t *m, size_t len, unsigned mode,
                         efs_meta_info *info, efs_entry_fn entry, void *ctx,
                         efs_offset_map map, void *map_ctx, uint64_t base,
                         efs_error *err)
{
    mctx cc = {m, (uint32_t)(len > EFS_META_MAX ? EFS_META_MAX + 1 : len), mode, err,
               map, map_ctx, base, entry, ctx};
    mctx *c = &cc;
    span iv[2];
    int n = 0;
    efs_dword rc;

    memset(info, 0, sizeof *info);
    info->length = (uint32_t)len;
    if (len >= sizeof EFS_META_PFILE && memcmp(m, EFS_META_PFILE, sizeof EFS_META_PFILE) == 0) {
        info->layout = EFS_META_LAYOUT_V3;
        if (mode == EFS_MODE_STRICT)
            return mfail(c, 11, "E_META_UNSUPPORTED",
                         "metadata Version 3 (.pfile, RMS) is not supported", 0,
                         EFS_ERROR_NOT_SUPPORTED);
        return 0;
    }
    if (len < 4 || efs_get32(m + EFS_META_OFF_LENGTH) != len)
        return MFAIL(10, "E_META_LEN", "the metadata Length differs from its size",
                     EFS_META_OFF_LENGTH);
    if (len <= EFS_META_V1_HDR || len > EFS_META_MAX)
        return MFAIL(10, "E_META_LEN", "the metadata size is outside 85..262144",
                     EFS_META_OFF_LENGTH);
    info->version = efs_get32(m + EFS_META_OFF_VERSION);
    if (info->version == 4 || info->version == 5) {
        info->layout = EFS_META_LAYOUT_V2;
        if (mode == EFS_MODE_STRICT)
            return mfail(c, 11, "E_META_UNSUPPORTED",
                         "metadata Version 2 (EFS_Version 4/5, ECDH/DPAPI-NG) is not supported",
                         EFS_META_OFF_VERSION, EFS_ERROR_NOT_SUPPORTED);
        return 0;
    }
    if (info->version < 1 || info->version > 3)
        return MFAIL(11, "E_META_VERSION", "unknown EFS_Version", EFS_META_OFF_VERSION);
    info->layout = EFS_META_LAYOUT_V1;

    if (mode == EFS_MODE_STRICT) {
        static const uint32_t res[][2] = {
            {EFS_META_OFF_RESERVED1, 4}, {EFS_META_OFF_RESERVED2, 4},
            {EFS_META_OFF_RESERVED3, 16}, {EFS_META_OFF_RESERVED4, EFS_META_RESERVED4_LEN}};
        for (unsigned i = 0; i < sizeof res / sizeof res[0]; i++)
            if (!efs_all_zero(m + res[i][0], res[i][1]))
                return MFAIL(12, "E_META_RESERVED", "a metadata Reserved field is not zero", res[i][0]);
    }
    uint32_t ddf = efs_get32(m + EFS_META_OFF_DDF), drf = efs_get32(m + EFS_META_OFF_DRF);
    if (ddf < EFS_META_V1_HDR || (uint64_t)ddf + EFS_KEYLIST_HDR > len)
        return MFAIL(12, "E_META_DDF", "DDF_Offset lies outside the metadata", EFS_META_OFF_DDF);
    if (drf != 0 && (drf < EFS_META_V1_HDR || (uint64_t)drf + EFS_KEYLIST_HDR > len))
        return MFAIL(12, "E_META_DRF", "DRF_Offset lies outside the metadata", EFS_META_OFF_DRF);
    if ((rc = parse_list(c, ddf, 0, &info->ddf_count, &iv[n++]))) return rc;
    if (drf && (rc = parse_list(c, drf, 1, &info->drf_count, &iv[n++]))) return rc;
    if ((rc = check_fields(c, EFS_META_V1_HDR, len, iv, n, 1))) return rc;
    info->supported = 1;
    return 0;
}

/* ---- builder ---- */

static size_t cert_size(const efs_key_desc *k)
{
    return EFS_CERT_HDR + k->thumb_length +
           (k->container ? k->container_length + 2u : 0) +
           (k->provider ? k->provider_length + 2u : 0) +
           (k->display ? k->display_length + 2u : 0);
}

static size_t entry_size(const efs_key_desc *k)
{
    return EFS_KEY_HDR + EFS_PKI_HDR + k->sid_length + cert_size(k) + k->fek_length;
}

static size_t put_string(uint8_t *out, size_t at, const uint8_t *s, uint32_t n)
{
    memcpy(out + at, s, n);
    efs_put16(out + at + n, 0);
    return at + n + 2;
}

/* Lays the entry out tightly, as Windows does: header, PKI (header, SID,
 * certificate data: thumbprint, container, provider, display), then FEK. */
static void put_entry(uint8_t *out, size_t e, const efs_key_desc *k)
{
    size_t el = entry_size(k), pki = e + EFS_KEY_HDR;
    size_t pl = EFS_PKI_HDR + k->sid_length + cert_size(k);
    size_t cert = pki + EFS_PKI_HDR + k->sid_length, at;

    efs_put32(out + e + EFS_KEY_OFF_LENGTH, (uint32_t)el);
    efs_put32(out + e + EFS_KEY_OFF_PKI, EFS_KEY_HDR);
    efs_put32(out + e + EFS_KEY_OFF_FEK_LEN, k->fek_length);
    efs_put32(out + e + EFS_KEY_OFF_FEK, (uint32_t)(EFS_KEY_HDR + pl));
    efs_put32(out + e + EFS_KEY_OFF_FLAGS, k->flags);

    efs_put32(out + pki + EFS_PKI_OFF_LENGTH, (uint32_t)pl);
    efs_put32(out + pki + EFS_PKI_OFF_SID, k->sid_length ? EFS_PKI_HDR : 0);
    efs_put32(out + pki + EFS_PKI_OFF_TYPE, EFS_PKI_TYPE_CERT);
    efs_put32(out + pki + EFS_PKI_OFF_CERT_LEN, (uint32_t)cert_size(k));
    efs_put32(out + pki + EFS_PKI_OFF_CERT, (uint32_t)(EFS_PKI_HDR + k->sid_length));
    if (k->sid_length) memcpy(out + pki + EFS_PKI_HDR, k->sid, k->sid_length);

    at = EFS_CERT_HDR;
    efs_put32(out + cert + EFS_CERT_OFF_THUMB, (uint32_t)at);
    efs_put32(out + cert + EFS_CERT_OFF_THUMB_LEN, k->thumb_length);
    memcpy(out + cert + at, k->thumb, k->thumb_length);
    at += k->thumb_length;
    if (k->container) {
        efs_put32(out + cert + EFS_CERT_OFF_CONTAINER, (uint32_t)at);
        at = put_string(out + cert, at, k->container, k->container_length);
    }
    if (k->provider) {
        efs_put32(out + cert + EFS_CERT_OFF_PROVIDER, (uint32_t)at);
        at = put_string(out + cert, at, k->provider, k->provider_length);
    }
    if (k->display) {
        efs_put32(out + cert + EFS_CERT_OFF_DISPLAY, (uint32_t)at);
        put_string(out + cert, at, k->display, k->display_length);
    }
    memcpy(out + e + EFS_KEY_HDR + pl, k->fek, k->fek_length);
}

size_t efs_meta_build(uint32_t version, const uint8_t efs_id[16],
                      const efs_key_desc *keys, size_t nkeys,
                      uint8_t *out, size_t cap)
{
    size_t lists[2] = {0, 0}, counts[2] = {0, 0}, total, at;
    if (version < 1 || version > 3) return 0;
    for (size_t i = 0; i < nkeys; i++) {
        const efs_key_desc *k = &keys[i];
        if (k->fek_length == 0 || k->thumb_length == 0 || (k->provider && !k->container))
            return 0;
        if (k->sid_length && (k->sid_length < EFS_SID_HDR || k->sid[0] != 1 ||
                              k->sid[1] > EFS_SID_MAX_SUBAUTH ||
                              k->sid_length != EFS_SID_HDR + 4u * k->sid[1]))
            return 0;
        if (entry_size(k) > EFS_META_MAX) return 0;
        lists[k->is_drf ? 1 : 0] += entry_size(k);
        counts[k->is_drf ? 1 : 0]++;
    }
    if (counts[0] == 0) return 0;
    total = EFS_META_V1_HDR + EFS_KEYLIST_HDR + lists[0] +
            (counts[1] ? EFS_KEYLIST_HDR + lists[1] : 0);
    if (total > EFS_META_MAX) return 0;
    if (!out || cap < total) return total;

    memset(out, 0, total);
    efs_put32(out + EFS_META_OFF_LENGTH, (uint32_t)total);
    efs_put32(out + EFS_META_OFF_VERSION, version);
    memcpy(out + EFS_META_OFF_ID, efs_id, 16);
    at = EFS_META_V1_HDR;
    for (int drf = 0; drf < 2; drf++) {
        if (counts[drf] == 0) continue;
        efs_put32(out + (drf ? EFS_META_OFF_DRF : EFS_META_OFF_DDF), (uint32_t)at);
        efs_put32(out + at + EFS_KEYLIST_OFF_COUNT, (uint32_t)counts[drf]);
        at += EFS_KEYLIST_HDR;
        for (size_t i = 0; i < nkeys; i++)
            if ((keys[i].is_drf ? 1 : 0) == drf) {
                put_entry(out, at, &keys[i]);
                at += entry_size(&keys[i]);
            }
    }
    return total;
}
