/* model.c: the crate_model handle: creation, the flat parameter and gradient
 * blocks carved into named views by the params.h table (MODEL.md §6, STYLE.md
 * principle 4), initialisation (MODEL.md §4), the tensor table, and the
 * measure-then-allocate activation arena (MODEL.md §8 "Activation memory").
 * forward.c holds the forward and backward passes.
 *
 * Every heap block the model ever holds is allocated here, through
 * model_alloc, which counts them (crate_model_alloc_count) so tests can
 * check that forward / backward / infer allocate nothing.
 * Non-goals: checkpoint I/O (io/), optimiser state (train/).
 */
#include <stdint.h>
#include <string.h>

#include "model_internal.h"

#define ALIGN 64

/* ---- allocation -------------------------------------------------------- */

static void *model_alloc(crate_model *m, size_t bytes) {
  size_t rounded = (bytes + ALIGN - 1) / ALIGN * ALIGN;
  if (rounded == 0)
    rounded = ALIGN;
  void *p = aligned_alloc(ALIGN, rounded);
  if (p) {
    memset(p, 0, rounded);
    m->n_allocs++;
  }
  return p;
}

/* ---- views ------------------------------------------------------------- */

/* Points every table view of v into base (NULL clears them). */
static void carve_views(const crate_model *m, crate__views *v, float *base) {
  for (size_t i = 0; i < m->n_rows; i++) {
    const crate__row *row = &m->rows[i];
    char *owner;
    switch (row->group) {
    case CRATE__GROUP_ENC: owner = (char *)&v->enc[row->layer]; break;
    case CRATE__GROUP_DEC: owner = (char *)&v->dec[row->layer]; break;
    default: owner = (char *)v; break;
    }
    float *p = base ? base + row->desc.offset : NULL;
    memcpy(owner + row->spec->view_off, &p, sizeof p);
  }
}

/* ---- activation layout ------------------------------------------------- */

typedef struct carver {
  char *base;
  size_t off;
  bool ok;
} carver;

static size_t mul2(carver *c, size_t a, size_t b) {
  if (a != 0 && b > SIZE_MAX / a) {
    c->ok = false;
    return 0;
  }
  return a * b;
}

/* Reserves `bytes` at the next 64-byte boundary; returns the pointer when
 * carving, NULL when measuring. */
static void *take(carver *c, size_t bytes) {
  if (!c->ok)
    return NULL;
  size_t start = (c->off + ALIGN - 1) / ALIGN * ALIGN;
  if (start < c->off || bytes > SIZE_MAX - start - ALIGN) {
    c->ok = false;
    return NULL;
  }
  c->off = start + bytes;
  return c->base ? c->base + start : NULL;
}

static float *takef(carver *c, size_t a, size_t b) {
  size_t n = mul2(c, a, b);
  return (float *)take(c, mul2(c, n, sizeof(float)));
}

bool crate__acts_layout(const crate_dims *dm, crate__acts *A, char *base, size_t cap, bool training,
                        size_t *bytes) {
  carver c = {base, 0, true};
  const size_t d = dm->d, n = dm->n, N = dm->N, P = dm->P;
  const size_t M = mul2(&c, cap, N), capn = mul2(&c, cap, n);
  const size_t NN = mul2(&c, N, N);
  A->cap = cap;
  A->v = takef(&c, capn, P);
  A->tgt = takef(&c, capn, P);
  A->e = takef(&c, capn, d);
  A->x0 = takef(&c, M, d);
  crate__enc_cache enc_dummy;
  crate__dec_cache dec_dummy;
  for (size_t l = 0; l < A->nenc; l++) {
    crate__enc_cache *e = A->enc ? &A->enc[l] : &enc_dummy;
    e->a1 = takef(&c, M, d);
    e->mean1 = takef(&c, M, 1);
    e->rstd1 = takef(&c, M, 1);
    e->w = takef(&c, M, d);
    e->attn = takef(&c, mul2(&c, cap, dm->K), NN);
    e->o = takef(&c, M, d);
    e->h = takef(&c, M, d);
    e->a2 = takef(&c, M, d);
    e->mean2 = takef(&c, M, 1);
    e->rstd2 = takef(&c, M, 1);
    e->r = takef(&c, M, d);
    e->y = takef(&c, M, d);
  }
  A->meanf = takef(&c, M, 1);
  A->rstdf = takef(&c, M, 1);
  A->latent = takef(&c, M, d);
  for (size_t l = 0; l < A->ndec; l++) {
    crate__dec_cache *e = A->dec ? &A->dec[l] : &dec_dummy;
    e->b1 = takef(&c, M, d);
    e->meana = takef(&c, M, 1);
    e->rstda = takef(&c, M, 1);
    e->h = takef(&c, M, d);
    e->b2 = takef(&c, M, d);
    e->meanb = takef(&c, M, 1);
    e->rstdb = takef(&c, M, 1);
    e->w = takef(&c, M, d);
    e->attn = takef(&c, mul2(&c, cap, dm->Kd), NN);
    e->o = takef(&c, M, d);
    e->y = takef(&c, M, d);
  }
  A->meand = takef(&c, M, 1);
  A->rstdd = takef(&c, M, 1);
  A->zd = takef(&c, M, d);
  A->pred = takef(&c, capn, P);
  A->mask = (uint8_t *)take(&c, capn);
  A->tmp = takef(&c, M, d);
  if (training) {
    A->yalt = NULL;
    A->gpred = takef(&c, capn, P);
    A->g0 = takef(&c, M, d);
    A->g1 = takef(&c, M, d);
    A->g2 = takef(&c, M, d);
    A->ge = takef(&c, capn, d);
    /* The scratch sizes below cannot overflow once M d and cap K N^2 did not. */
    size_t s = 2 * mul2(&c, M, d);
    if (c.ok) {
      size_t se = crate_mssa_scratch_size(cap, N, dm->K, dm->p);
      size_t sd = crate_mssa_scratch_size(cap, N, dm->Kd, dm->pd);
      size_t si = crate_ista_scratch_size(M, d);
      s = se > sd ? se : sd;
      s = s > si ? s : si;
    }
    A->scratch = takef(&c, s, 1);
  } else {
    A->yalt = takef(&c, M, d);
    A->gpred = A->g0 = A->g1 = A->g2 = A->ge = A->scratch = NULL;
  }
  *bytes = c.off;
  return c.ok;
}

/* ---- lifetime ---------------------------------------------------------- */

void crate_model_destroy(crate_model *m) {
  if (!m)
    return;
  free(m->rows);
  free(m->params);
  free(m->grads);
  free(m->pos);
  free(m->pv.enc);
  free(m->pv.dec);
  free(m->gv.enc);
  free(m->gv.dec);
  free(m->arena);
  free(m->train.enc);
  free(m->train.dec);
  free(m->iws);
  free(m->inf.enc);
  free(m->inf.dec);
  free(m);
}

int crate_model_create(crate_model **out, const crate_config *cfg) {
  CRATE_ASSERT(out);
  crate_dims dm;
  CRATE_TRY(crate_config_dims(cfg, &dm));
  crate_model *m = calloc(1, sizeof *m);
  if (!m)
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "model: out of memory for the handle");
  m->n_allocs = 1;
  m->cfg = *cfg;
  m->dm = dm;
  m->n_rows = crate__row_count(&dm);
  m->rows = model_alloc(m, (m->n_rows + 1) * sizeof *m->rows);
  m->pv.enc = model_alloc(m, dm.Le * sizeof *m->pv.enc);
  m->pv.dec = model_alloc(m, dm.Ld * sizeof *m->pv.dec);
  m->gv.enc = model_alloc(m, dm.Le * sizeof *m->gv.enc);
  m->gv.dec = model_alloc(m, dm.Ld * sizeof *m->gv.dec);
  m->train.enc = model_alloc(m, dm.Le * sizeof *m->train.enc);
  m->train.dec = model_alloc(m, dm.Ld * sizeof *m->train.dec);
  m->inf.enc = model_alloc(m, sizeof *m->inf.enc);
  m->inf.dec = model_alloc(m, sizeof *m->inf.dec);
  if (!m->rows || !m->pv.enc || !m->pv.dec || !m->gv.enc || !m->gv.dec || !m->train.enc ||
      !m->train.dec || !m->inf.enc || !m->inf.dec) {
    crate_model_destroy(m);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "model: out of memory for the tensor table");
  }
  m->train.nenc = dm.Le;
  m->train.ndec = dm.Ld;
  m->inf.nenc = 1;
  m->inf.ndec = 1;
  m->n_params = 0;
  for (size_t i = 0; i <= m->n_rows; i++) {
    crate__row_get(&dm, i, &m->rows[i]);
    if (m->rows[i].desc.trainable)
      m->n_params += m->rows[i].desc.count;
  }
  m->params = model_alloc(m, m->n_params * sizeof(float));
  m->pos = model_alloc(m, dm.N * dm.d * sizeof(float));
  size_t iws_bytes = 0;
  bool ok = crate__acts_layout(&dm, &m->inf, NULL, 1, false, &iws_bytes);
  CRATE_ASSERT(ok); /* one image of a validated config cannot overflow */
  m->iws = model_alloc(m, iws_bytes);
  if (!m->params || !m->pos || !m->iws) {
    size_t want = m->n_params;
    crate_model_destroy(m);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM, "model: out of memory for %zu parameters", want);
  }
  (void)crate__acts_layout(&dm, &m->inf, m->iws, 1, false, &iws_bytes);
  carve_views(m, &m->pv, m->params);
  int st = crate_pos_table(m->pos, dm.g, dm.d);
  CRATE_ASSERT(st == CRATE_STATUS_OK); /* d % 4 == 0 was validated */
  *out = m;
  return CRATE_STATUS_OK;
}

/* ---- initialisation (MODEL.md §4) -------------------------------------- */

int crate_model_init(crate_model *m, uint64_t seed) {
  CRATE_ASSERT(m);
  crate_rng rng;
  crate_rng_init(&rng, seed, CRATE_RNG_INIT);
  for (size_t i = 0; i < m->n_rows; i++) {
    const crate__row *row = &m->rows[i];
    const crate_tensor_desc *t = &row->desc;
    float *x = m->params + t->offset;
    double bound = 0.0;
    switch (row->spec->init) {
    case CRATE__INIT_ZERO:
    case CRATE__INIT_ONE: {
      const float v = row->spec->init == CRATE__INIT_ONE ? 1.0f : 0.0f;
      for (size_t k = 0; k < t->count; k++)
        x[k] = v;
      continue;
    }
    case CRATE__INIT_NORMAL:
      for (size_t k = 0; k < t->count; k++)
        x[k] = (float)(0.02 * crate_rng_normal(&rng));
      continue;
    case CRATE__INIT_XAVIER: {
      /* fan_out = shape[0]; fan_in = the rest (conv weight on its (d, P) view) */
      const double fan_out = (double)t->shape[0];
      const double fan_in = (double)t->count / fan_out;
      bound = sqrt(6.0 / (fan_in + fan_out));
      break;
    }
    case CRATE__INIT_CONVBIAS: bound = 1.0 / sqrt((double)m->dm.P); break;
    case CRATE__INIT_KAIMING: bound = sqrt(6.0 / (double)t->shape[1]); break;
    }
    for (size_t k = 0; k < t->count; k++)
      x[k] = (float)((2.0 * crate_rng_uniform(&rng) - 1.0) * bound);
  }
  return CRATE_STATUS_OK;
}

/* ---- accessors --------------------------------------------------------- */

const crate_config *crate_model_config(const crate_model *m) {
  return &m->cfg;
}
const crate_dims *crate_model_dims(const crate_model *m) {
  return &m->dm;
}
size_t crate_model_param_count(const crate_model *m) {
  return m->n_params;
}
float *crate_model_params(crate_model *m) {
  return m->params;
}
float *crate_model_grads(crate_model *m) {
  return m->grads;
}
float *crate_model_pos_embed(crate_model *m) {
  return m->pos;
}
size_t crate_model_tensor_count(const crate_model *m) {
  return m->n_rows + 1;
}
size_t crate_model_reserved_batch(const crate_model *m) {
  return m->train.cap;
}
size_t crate_model_arena_bytes(const crate_model *m) {
  return m->arena_bytes;
}
size_t crate_model_alloc_count(const crate_model *m) {
  return m->n_allocs;
}

int crate_model_tensor_at(crate_model *m, size_t i, crate_model_tensor *out) {
  CRATE_ASSERT(m && out);
  if (i > m->n_rows)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: tensor index %zu out of range (%zu tensors)", i,
                       m->n_rows + 1);
  const crate__row *row = &m->rows[i];
  out->desc = row->desc;
  if (row->desc.trainable) {
    out->data = m->params + row->desc.offset;
    out->grad = m->grads ? m->grads + row->desc.offset : NULL;
  } else {
    out->data = m->pos;
    out->grad = NULL;
  }
  return CRATE_STATUS_OK;
}

int crate_model_tensor_find(crate_model *m, const char *name, crate_model_tensor *out) {
  CRATE_ASSERT(m && out);
  if (!name)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: tensor name is NULL");
  for (size_t i = 0; i <= m->n_rows; i++)
    if (strcmp(m->rows[i].desc.name, name) == 0)
      return crate_model_tensor_at(m, i, out);
  return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: no tensor named '%s'", name);
}

/* ---- the arena --------------------------------------------------------- */

int crate_model_arena_size(const crate_model *m, size_t batch, size_t *bytes) {
  CRATE_ASSERT(m && bytes);
  if (batch == 0)
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: batch must be at least 1");
  /* Measure on a scratch descriptor: NULL cache arrays keep the live views. */
  crate__acts tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.nenc = m->dm.Le;
  tmp.ndec = m->dm.Ld;
  if (!crate__acts_layout(&m->dm, &tmp, NULL, batch, true, bytes))
    return CRATE_ERROR(CRATE_STATUS_EINVAL, "model: activation arena for batch %zu overflows",
                       batch);
  return CRATE_STATUS_OK;
}

int crate_model_reserve(crate_model *m, size_t batch) {
  CRATE_ASSERT(m);
  size_t bytes = 0;
  CRATE_TRY(crate_model_arena_size(m, batch, &bytes));
  if (m->arena && batch <= m->train.cap)
    return CRATE_STATUS_OK;
  float *grads = m->grads;
  if (!grads) {
    grads = model_alloc(m, m->n_params * sizeof(float));
    if (!grads)
      return CRATE_ERROR(CRATE_STATUS_ENOMEM, "model: out of memory for %zu gradients",
                         m->n_params);
  }
  void *arena = model_alloc(m, bytes);
  if (!arena) {
    if (grads != m->grads)
      free(grads);
    return CRATE_ERROR(CRATE_STATUS_ENOMEM,
                       "model: out of memory for the %.1f MiB activation arena (batch %zu)",
                       (double)bytes / 1048576.0, batch);
  }
  if (!m->grads) {
    m->grads = grads;
    carve_views(m, &m->gv, m->grads);
  }
  free(m->arena);
  m->arena = arena;
  m->arena_bytes = bytes;
  size_t check = 0;
  bool ok = crate__acts_layout(&m->dm, &m->train, arena, batch, true, &check);
  CRATE_ASSERT(ok && check == bytes);
  m->have_forward = false;
  m->last_B = 0;
  return CRATE_STATUS_OK;
}
