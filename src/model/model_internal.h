/* model_internal.h: helpers shared by the files of src/model/ (never
 * installed).  Only the files of src/model/ include it. */
#ifndef CRATE_MODEL_INTERNAL_H
#define CRATE_MODEL_INTERNAL_H

#include <stddef.h>

#include "crate/config.h"
#include "crate/model.h"
#include "crate/ops.h"
#include "internal.h"
#include "params.h"

/* Table groups, in flat-block order. */
typedef enum crate__group {
  CRATE__GROUP_HEAD = 0,
  CRATE__GROUP_ENC,
  CRATE__GROUP_MID,
  CRATE__GROUP_DEC,
  CRATE__GROUP_TAIL,
  CRATE__GROUP_FIXED, /* decoder_pos_embed */
} crate__group;

/* Entry i of the tensor table expanded for concrete sizes. */
typedef struct crate__row {
  const crate__pspec *spec; /* NULL for decoder_pos_embed */
  crate__group group;
  size_t layer; /* block index for ENC / DEC rows, else 0 */
  crate_tensor_desc desc;
} crate__row;

/* Number of trainable rows: 10 + 8 (L_e + L_d). */
size_t crate__row_count(const crate_dims *dm);

/* Expands row i (0 <= i <= crate__row_count(dm); the last is
 * decoder_pos_embed).  Contract: i in range. */
void crate__row_get(const crate_dims *dm, size_t i, crate__row *out);

/* Value of a symbolic dimension. */
size_t crate__dim_value(const crate_dims *dm, crate__dim dim);

/* ---- activations -------------------------------------------------------
 * One cache per block; every array holds rows for `cap` images, M = cap N.
 * Shapes: token arrays (M, d); mean / rstd (M); attn (cap, K, N, N). */

typedef struct crate__enc_cache {
  float *a1, *mean1, *rstd1; /* A^(1) = LN_1(X) and its stats */
  float *w, *attn, *o;       /* MSSA caches: qkv output, Pi_k, head outputs */
  float *h;                  /* H = X + MSSA(A^(1)) */
  float *a2, *mean2, *rstd2; /* A^(2) = LN_2(H) */
  float *r;                  /* ISTA cache R = A^(2) - A^(2) D^T (row form) */
  float *y;                  /* X' = ReLU(U), the block output */
} crate__enc_cache;

typedef struct crate__dec_cache {
  float *b1, *meana, *rstda; /* B^(1) = LN_a(X) */
  float *h;                  /* H = E B^(1) */
  float *b2, *meanb, *rstdb; /* B^(2) = LN_b(H) */
  float *w, *attn, *o;       /* MSSA caches */
  float *y;                  /* X' = H - MSSA(B^(2)), the block output */
} crate__dec_cache;

typedef struct crate__acts {
  size_t cap;            /* images the buffers hold */
  float *v;              /* (cap, n, P) patches, embedding order */
  float *tgt;            /* (cap, n, P) targets, target order */
  float *e;              /* (cap, n, d) patch embeddings */
  float *x0;             /* (M, d) tokens entering the encoder */
  size_t nenc, ndec;     /* caches: L_e / L_d (training) or 1 (inference) */
  crate__enc_cache *enc; /* (nenc) */
  float *meanf, *rstdf;  /* (M) final encoder norm stats */
  float *latent;         /* (M, d) */
  crate__dec_cache *dec; /* (ndec) */
  float *meand, *rstdd;  /* (M) decoder_norm stats */
  float *zd;             /* (M, d) decoder_norm output */
  float *pred;           /* (cap, n, P) target order */
  uint8_t *mask;         /* (cap, n) copy of the mask */
  float *tmp;            /* (M, d) decoder MSSA output in forward */
  float *yalt;           /* (M, d) ping-pong block output (inference) */
  float *gpred;          /* (cap, n, P) backward only, from here on */
  float *g0, *g1, *g2;   /* (M, d) activation gradients */
  float *ge;             /* (cap, n, d) patch-embedding gradient */
  float *scratch;        /* MSSA / ISTA backward scratch */
} crate__acts;

struct crate_model {
  crate_config cfg;
  crate_dims dm;
  size_t n_rows;       /* trainable tensors */
  size_t n_params;     /* floats in the flat blocks */
  crate__row *rows;    /* (n_rows + 1) table, last = decoder_pos_embed */
  float *params;       /* (n_params) */
  float *grads;        /* (n_params) or NULL before reserve */
  float *pos;          /* (N, d) */
  crate__views pv, gv; /* views into params and grads */
  void *arena;         /* training activations */
  size_t arena_bytes;
  crate__acts train;
  void *iws; /* inference workspace (one image) */
  crate__acts inf;
  size_t last_B; /* images of the recorded forward */
  bool have_forward;
  size_t n_allocs; /* heap blocks allocated since create (test hook) */
};

/* Measures (base == NULL) or carves (base != NULL) activation buffers for
 * cap images; A->enc / A->dec hold A->nenc / A->ndec caches, or are NULL
 * when only measuring.  training
 * adds the backward buffers, otherwise the inference ping-pong buffer.
 * @return false when a size overflows. */
bool crate__acts_layout(const crate_dims *dm, crate__acts *A, char *base, size_t cap, bool training,
                        size_t *bytes);

#endif
