/* recon_common.c: PNG input for a model, normalisation, directory listing,
 * the formatting of printed figures and atomic (temporary file + rename)
 * PNG output, shared by `crate reconstruct` and `crate eval` (see
 * recon_common.h).
 */
#include "recon_common.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool recon_to_channels(float *out, const crate_image *img, size_t C) {
  const size_t hw = img->width * img->height, ic = img->channels;
  const size_t colour = ic >= 3 ? 3 : 1; /* channels without alpha */
  if (C == colour) {
    for (size_t c = 0; c < C; c++)
      for (size_t i = 0; i < hw; i++)
        out[c * hw + i] = img->data[i * ic + c];
    return true;
  }
  if (C == 1 && colour == 3) {
    for (size_t i = 0; i < hw; i++) {
      const float *p = img->data + i * ic;
      out[i] = (float)(RECON_LUMA_R * p[0] + RECON_LUMA_G * p[1] + RECON_LUMA_B * p[2]);
    }
    return true;
  }
  if (C == 3 && colour == 1) {
    for (size_t c = 0; c < 3; c++)
      for (size_t i = 0; i < hw; i++)
        out[c * hw + i] = img->data[i * ic];
    return true;
  }
  return false;
}

int recon_read_png(const char *cmd, const char *what, const char *path, size_t C, size_t H,
                   float *out) {
  crate_image *img = NULL;
  int st = crate_png_read(path, &img, NULL);
  if (st != CRATE_STATUS_OK)
    return cli_fail_status(cmd, st);
  if (img->width != H || img->height != H) {
    cli_fail(cmd, "%s: %s is %zu x %zu pixels but the model expects %zu x %zu", path, what,
             img->width, img->height, H, H);
    crate_image_destroy(img);
    return CLI_FAIL;
  }
  if (!recon_to_channels(out, img, C)) {
    cli_fail(cmd, "%s: %s has %zu channels; the model needs %zu", path, what, img->channels, C);
    crate_image_destroy(img);
    return CLI_FAIL;
  }
  crate_image_destroy(img);
  return CLI_OK;
}

void recon_normalise(float *x, const crate_config *cfg, size_t count, size_t hw) {
  const size_t C = cfg->in_chans;
  for (size_t b = 0; b < count; b++)
    for (size_t c = 0; c < C; c++) {
      const double mu = cfg->pixel_mean[c], sd = cfg->pixel_std[c];
      if (mu == 0.0 && sd == 1.0)
        continue;
      float *p = x + (b * C + c) * hw;
      for (size_t i = 0; i < hw; i++)
        p[i] = (float)(((double)p[i] - mu) / sd);
    }
}

void recon_denormalise_clamp(float *x, const crate_config *cfg, size_t count, size_t hw) {
  const size_t C = cfg->in_chans;
  for (size_t b = 0; b < count; b++)
    for (size_t c = 0; c < C; c++) {
      const double mu = cfg->pixel_mean[c], sd = cfg->pixel_std[c];
      float *p = x + (b * C + c) * hw;
      for (size_t i = 0; i < hw; i++) {
        const double v = (double)p[i] * sd + mu;
        p[i] = v > 0 ? (v < 1 ? (float)v : 1.0f) : 0.0f; /* NaN -> 0 */
      }
    }
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void recon_free_names(char **names, size_t count) {
  if (!names)
    return;
  for (size_t i = 0; i < count; i++)
    free(names[i]);
  free(names);
}

int recon_list_pngs(const char *cmd, const char *dir, char ***names, size_t *count) {
  DIR *d = opendir(dir);
  if (!d)
    return cli_fail(cmd, "%s: cannot open the directory: %s", dir, strerror(errno));
  char **v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = CLI_OK;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    const size_t len = strlen(nm);
    if (nm[0] == '.' || len < 5 || strcasecmp(nm + len - 4, ".png") != 0)
      continue;
    char full[4096];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, nm) >= sizeof full)
      continue;
    struct stat sb;
    if (stat(full, &sb) != 0 || !S_ISREG(sb.st_mode))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nv = realloc(v, cap * sizeof *nv);
      if (!nv) {
        rc = cli_fail(cmd, "%s: out of memory listing the directory", dir);
        break;
      }
      v = nv;
    }
    if (!(v[n] = strdup(nm))) {
      rc = cli_fail(cmd, "%s: out of memory listing the directory", dir);
      break;
    }
    n++;
  }
  closedir(d);
  if (rc != CLI_OK) {
    recon_free_names(v, n);
    return rc;
  }
  if (n > 1)
    qsort(v, n, sizeof *v, cmp_names);
  *names = v;
  *count = n;
  return CLI_OK;
}

const char *recon_fmt(double v, const char *f, char *buf, size_t n) {
  if (isinf(v))
    snprintf(buf, n, "inf");
  else if (isnan(v))
    snprintf(buf, n, "n/a");
  else
    snprintf(buf, n, f, v);
  return buf;
}

int recon_write_tmp(const char *cmd, const char *path, const crate_image *img, char *tmp,
                    size_t tmp_size) {
  const char *slash = strrchr(path, '/');
  const int dir_len = slash ? (int)(slash - path + 1) : 0;
  const char *base = slash ? slash + 1 : path;
  if (!*base)
    return cli_fail(cmd, "cannot write %s: not a file name", path);
  if ((size_t)snprintf(tmp, tmp_size, "%.*s.%s.tmp-%ld", dir_len, path, base, (long)getpid()) >=
      tmp_size)
    return cli_fail(cmd, "cannot write %s: path too long", path);
  if (cli_is_dir(path))
    return cli_fail(cmd, "cannot write %s: it is a directory", path);
  int st = crate_png_write(tmp, img);
  if (st != CRATE_STATUS_OK) {
    cli_fail(cmd, "cannot write %s (%s)", path, crate_error_message());
    recon_discard(tmp);
    return CLI_FAIL;
  }
  return CLI_OK;
}

int recon_commit(const char *cmd, const char *tmp, const char *path) {
  if (rename(tmp, path) != 0) {
    const int e = errno;
    recon_discard(tmp);
    return cli_fail(cmd, "cannot write %s: %s", path, strerror(e));
  }
  return CLI_OK;
}

void recon_discard(const char *tmp) {
  if (tmp && *tmp)
    (void)unlink(tmp);
}
