/* cmd_inspect.c: `crate inspect FILE`, the header, configuration, parameter
 * counts and tensor table of a model file (MODEL.md §6, §7, §11; STYLE.md
 * §5).
 *
 * The file is loaded with every check of MODEL.md §11.3 (so inspect doubles
 * as a validator: a bad file exits 1 with the loader's message).  The
 * "trainable, used" count is the one the C model reports
 * (crate_model_param_count); the other three columns of the MODEL.md §7
 * table come from the configuration.  --json prints one object with at
 * least {"preset", "params", "config"} (written with Jansson).
 * Non-goals: per-layer coding rate and sparsity (--rate), which need data.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "crate/model.h"
#include "crate/modelio.h"
#include "crate/safetensors.h"

#define CMD "inspect"

enum { OPT_HEADS = 1300, OPT_LAMBDA, OPT_JSON };

static void usage(FILE *f) {
  fprintf(f,
          "usage: crate inspect [options] FILE\n\n"
          "Print a model file's header, configuration, parameter counts (MODEL.md §7) and\n"
          "tensor table.  The file is fully validated on the way (MODEL.md §11.3).\n\n"
          "Options:\n"
          "  -m, --model FILE        model file (instead of the FILE argument)\n"
          "      --heads K           head count, for files without crate.num_heads [from file]\n"
          "      --lambda L          ISTA lambda, for files without crate.ista_lambda [from file]\n"
          "      --json              print one JSON object on stdout instead of the tables\n"
          "  -h, --help              show this help and exit\n\n"
          "Example: crate inspect tests/reference/fmnist-tiny.model.safetensors --json\n");
}

static const char *tensor_role(crate_model *m, const char *name) {
  crate_model_tensor t;
  if (crate_model_tensor_find(m, name, &t) == CRATE_STATUS_OK)
    return t.desc.trainable ? "trainable" : "fixed";
  return strncmp(name, "optim.", 6) == 0 ? "optimiser state (ignored)" : "official only (ignored)";
}

static void shape_text(const crate_st_tensor *t, char *buf, size_t n) {
  size_t pos = (size_t)snprintf(buf, n, "[");
  for (size_t k = 0; k < t->ndim && pos < n; k++)
    pos += (size_t)snprintf(buf + pos, n - pos, "%s%zu", k ? ", " : "", t->shape[k]);
  if (pos < n)
    snprintf(buf + pos, n - pos, "]");
}

/* 1234567 -> "1,234,567" */
static const char *grouped(size_t v, char *buf, size_t n) {
  char raw[32];
  int len = snprintf(raw, sizeof raw, "%zu", v);
  size_t o = 0;
  for (int i = 0; i < len && o + 2 < n; i++) {
    if (i > 0 && (len - i) % 3 == 0)
      buf[o++] = ',';
    buf[o++] = raw[i];
  }
  buf[o] = '\0';
  return buf;
}

static json_t *json_list(const double *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_real(v[i]));
  return a;
}

static int print_json(const char *path, size_t bytes, const crate_st *st, crate_model *m,
                      const crate_param_counts *pc, const crate_flops *fl) {
  const crate_config *c = crate_model_config(m);
  const crate_dims *dm = crate_model_dims(m);
  json_t *o = json_object(), *cfg = json_object(), *counts = json_object(), *md = json_object(),
         *tensors = json_array();
  json_object_set_new(o, "file", json_string(path));
  json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
  json_object_set_new(o, "header_bytes", json_integer((json_int_t)crate_st_header_size(st)));
  json_object_set_new(o, "preset", json_string(c->preset));
  json_object_set_new(o, "params", json_integer((json_int_t)crate_model_param_count(m)));
  json_object_set_new(o, "params_official_total", json_integer((json_int_t)pc->official_total));
  json_object_set_new(counts, "trainable", json_integer((json_int_t)pc->trainable));
  json_object_set_new(counts, "file", json_integer((json_int_t)pc->file));
  json_object_set_new(counts, "official_trainable",
                      json_integer((json_int_t)pc->official_trainable));
  json_object_set_new(counts, "official_total", json_integer((json_int_t)pc->official_total));
  json_object_set_new(o, "param_counts", counts);
  json_object_set_new(cfg, "img_size", json_integer((json_int_t)c->img_size));
  json_object_set_new(cfg, "patch_size", json_integer((json_int_t)c->patch_size));
  json_object_set_new(cfg, "in_chans", json_integer((json_int_t)c->in_chans));
  json_object_set_new(cfg, "embed_dim", json_integer((json_int_t)c->embed_dim));
  json_object_set_new(cfg, "depth", json_integer((json_int_t)c->depth));
  json_object_set_new(cfg, "num_heads", json_integer((json_int_t)c->num_heads));
  json_object_set_new(cfg, "decoder_embed_dim", json_integer((json_int_t)c->decoder_embed_dim));
  json_object_set_new(cfg, "decoder_depth", json_integer((json_int_t)c->decoder_depth));
  json_object_set_new(cfg, "decoder_num_heads", json_integer((json_int_t)c->decoder_num_heads));
  json_object_set_new(cfg, "ista_eta", json_real(c->ista_eta));
  json_object_set_new(cfg, "ista_lambda", json_real(c->ista_lambda));
  json_object_set_new(cfg, "ln_eps", json_real(c->ln_eps));
  json_object_set_new(cfg, "final_ln_eps", json_real(c->final_ln_eps));
  json_object_set_new(cfg, "norm_pix_loss", json_boolean(c->norm_pix_loss));
  json_object_set_new(cfg, "mask_ratio", json_real(c->mask_ratio));
  json_object_set_new(cfg, "pixel_mean", json_list(c->pixel_mean, c->in_chans));
  json_object_set_new(cfg, "pixel_std", json_list(c->pixel_std, c->in_chans));
  json_object_set_new(cfg, "patches", json_integer((json_int_t)dm->n));
  json_object_set_new(cfg, "tokens", json_integer((json_int_t)dm->N));
  json_object_set_new(cfg, "patch_dim", json_integer((json_int_t)dm->P));
  json_object_set_new(cfg, "n_keep", json_integer((json_int_t)dm->n_keep));
  json_object_set_new(o, "config", cfg);
  json_object_set_new(o, "flops_forward_per_image", json_real(fl->forward));
  for (size_t i = 0; i < crate_st_metadata_count(st); i++) {
    const char *k, *v;
    if (crate_st_metadata_at(st, i, &k, &v) == CRATE_STATUS_OK)
      json_object_set_new(md, k, json_string(v));
  }
  json_object_set_new(o, "metadata", md);
  for (size_t i = 0; i < crate_st_count(st); i++) {
    crate_st_tensor t;
    if (crate_st_tensor_at(st, i, &t) != CRATE_STATUS_OK)
      continue;
    json_t *e = json_object(), *sh = json_array();
    for (size_t k = 0; k < t.ndim; k++)
      json_array_append_new(sh, json_integer((json_int_t)t.shape[k]));
    json_object_set_new(e, "name", json_string(t.name));
    json_object_set_new(e, "dtype", json_string(crate_st_dtype_name(t.dtype)));
    json_object_set_new(e, "shape", sh);
    json_object_set_new(e, "count", json_integer((json_int_t)t.count));
    json_object_set_new(e, "role", json_string(tensor_role(m, t.name)));
    json_array_append_new(tensors, e);
  }
  json_object_set_new(o, "tensors", tensors);
  int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
  json_decref(o);
  printf("\n");
  return rc == 0 ? CLI_OK : cli_fail(CMD, "cannot write JSON to stdout");
}

static void print_text(const char *path, size_t bytes, const crate_st *st, crate_model *m,
                       const crate_param_counts *pc, const crate_flops *fl) {
  const crate_config *c = crate_model_config(m);
  const crate_dims *dm = crate_model_dims(m);
  char b1[32];
  printf("file      %s\n", path);
  printf("          %zu bytes, header %zu bytes, %zu tensors, format version %s\n", bytes,
         crate_st_header_size(st), crate_st_count(st),
         crate_st_metadata(st, "crate.format_version")
             ? crate_st_metadata(st, "crate.format_version")
             : "(none)");
  printf("\nconfiguration\n");
  printf("  %-20s %s\n", "preset", c->preset);
  printf("  %-20s %zu x %zu x %zu (H x W x C)\n", "image", c->img_size, c->img_size, c->in_chans);
  printf("  %-20s %zu (grid %zu x %zu = %zu patches, N = %zu tokens, P = %zu)\n", "patch_size",
         c->patch_size, dm->g, dm->g, dm->n, dm->N, dm->P);
  printf("  %-20s %zu\n", "embed_dim", c->embed_dim);
  printf("  %-20s %zu encoder + %zu decoder\n", "layers", c->depth, c->decoder_depth);
  printf("  %-20s %zu encoder (p = %zu), %zu decoder (p = %zu)\n", "heads", c->num_heads, dm->p,
         c->decoder_num_heads, dm->pd);
  printf("  %-20s eta %.9g, lambda %.9g\n", "ISTA", c->ista_eta, c->ista_lambda);
  printf("  %-20s %.9g (blocks), %.9g (norm, decoder_norm)\n", "LayerNorm eps", c->ln_eps,
         c->final_ln_eps);
  printf("  %-20s %.9g (%zu visible of %zu)\n", "mask_ratio", c->mask_ratio, dm->n_keep, dm->n);
  printf("  %-20s %s\n", "norm_pix_loss", c->norm_pix_loss ? "on" : "off");
  printf("  %-20s mean", "input transform");
  for (size_t i = 0; i < c->in_chans; i++)
    printf("%s%.9g", i ? "," : " ", c->pixel_mean[i]);
  printf(", std");
  for (size_t i = 0; i < c->in_chans; i++)
    printf("%s%.9g", i ? "," : " ", c->pixel_std[i]);
  printf("\n");
  bool other = false;
  for (size_t i = 0; i < crate_st_metadata_count(st); i++) {
    const char *k, *v;
    if (crate_st_metadata_at(st, i, &k, &v) != CRATE_STATUS_OK || crate_config_metadata_key(k))
      continue;
    if (!other)
      printf("\nother metadata\n");
    other = true;
    printf("  %-20s %s\n", k, v);
  }
  printf("\nparameters (MODEL.md §7)\n");
  printf("  %-48s %12s\n", "trainable, used", grouped(crate_model_param_count(m), b1, sizeof b1));
  printf("  %-48s %12s\n", "+ decoder_pos_embed (what a crate file holds)",
         grouped(pc->file, b1, sizeof b1));
  printf("  %-48s %12s\n", "trainable incl. unused decoder_embed (official)",
         grouped(pc->official_trainable, b1, sizeof b1));
  printf("  %-48s %12s\n", "official total (+ pos_embed, decoder_pos_embed)",
         grouped(pc->official_total, b1, sizeof b1));
  printf("  %-48s %12.4g\n", "forward FLOPs per image (MODEL.md §9)", fl->forward);
  printf("\ntensors (file order)\n");
  printf("  %4s  %-48s %-5s %-18s %10s  %s\n", "#", "name", "dtype", "shape", "count", "role");
  for (size_t i = 0; i < crate_st_count(st); i++) {
    crate_st_tensor t;
    if (crate_st_tensor_at(st, i, &t) != CRATE_STATUS_OK)
      continue;
    char sh[64];
    shape_text(&t, sh, sizeof sh);
    printf("  %4zu  %-48s %-5s %-18s %10zu  %s\n", i, t.name, crate_st_dtype_name(t.dtype), sh,
           t.count, tensor_role(m, t.name));
  }
}

int cmd_inspect(int argc, char **argv) {
  static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
                                           {"heads", required_argument, NULL, OPT_HEADS},
                                           {"lambda", required_argument, NULL, OPT_LAMBDA},
                                           {"json", no_argument, NULL, OPT_JSON},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *path = NULL;
  bool json = false;
  crate_model_load_opts opts = {0, 0, false, 0.0};
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":m:h", longopts, NULL)) != -1) {
    switch (opt) {
    case 'm': path = optarg; break;
    case 'h': usage(stdout); return CLI_OK;
    case OPT_JSON: json = true; break;
    case OPT_HEADS: {
      long k;
      if (!cli_parse_long(CMD, "--heads", optarg, 1, 4096, &k))
        return CLI_USAGE;
      opts.num_heads = (size_t)k;
      break;
    }
    case OPT_LAMBDA:
      if (!cli_parse_double(CMD, "--lambda", optarg, 0.0, 1e6, &opts.ista_lambda))
        return CLI_USAGE;
      opts.has_lambda = true;
      break;
    case ':': return cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) {
    if (path)
      return cli_usage_error(CMD, "give the file once (-m or argument), got also '%s'",
                             argv[optind]);
    path = argv[optind++];
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!path)
    return cli_usage_error(CMD, "no model file given");

  crate_st *st = NULL;
  int st_rc = crate_st_open(path, &st);
  if (st_rc)
    return cli_fail_status(CMD, st_rc);
  crate_model *m = NULL;
  int rc = crate_model_load_st(st, &opts, &m);
  if (rc) {
    crate_st_close(st);
    return cli_fail_status(CMD, rc);
  }
  crate_param_counts pc;
  crate_flops fl;
  if ((rc = crate_config_param_counts(crate_model_config(m), &pc)) != CRATE_STATUS_OK ||
      (rc = crate_config_flops(crate_model_config(m), &fl)) != CRATE_STATUS_OK) {
    crate_model_destroy(m);
    crate_st_close(st);
    return cli_fail_status(CMD, rc);
  }
  FILE *f = fopen(path, "rb");
  size_t bytes = 0;
  if (f) {
    if (fseek(f, 0, SEEK_END) == 0) {
      long pos = ftell(f);
      bytes = pos > 0 ? (size_t)pos : 0;
    }
    fclose(f);
  }
  int out = CLI_OK;
  if (json)
    out = print_json(path, bytes, st, m, &pc, &fl);
  else
    print_text(path, bytes, st, m, &pc, &fl);
  crate_model_destroy(m);
  crate_st_close(st);
  return out;
}
