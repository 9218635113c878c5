# config.sh: the flags of experiment 003 (sourced by run.sh).  Everything not
# listed is the MATH.md default fixture: d=6, K=3, p_k=2, random incoherent
# bases from seed 0, equal weights; and the crate-layers defaults: N=8 tokens
# at sigma=0.3, eps2=0.25 (beta = p/(N eps2) = 1), T=2, 8 encoder layers.
SEED=0
# Main run: all four parts (a) denoising, (b) invertibility, (c) D8 cosine,
# (d) AoT rate, at the defaults.
MAIN=(--seed "$SEED")
# (a) variants: does the answer depend on the fixture?  Each is one line of the
# variant table in README.md.
VARIANTS=(
  "--part a --seed $SEED --eps2 1"
  "--part a --seed $SEED --eps2 0.09"
  "--part a --seed $SEED --subspaces orthogonal"
  "--part a --seed $SEED --subspaces orthogonal --eps2 0.09"
  "--part a --seed $SEED --tokens 64 --T 16"
  "--part a --seed $SEED --tokens 64 --T 16 --subspaces orthogonal"
  "--part a --seed 1"
  "--part a --seed 2"
)
# (b) the MSSA field's Euler round trip is pre-asymptotic at L <= 64: a longer sweep.
LONG_ROUNDTRIP=(--part b --seed "$SEED" --layers 16,32,64,128,256,512,1024)
# (d) beyond the 4 gated layers: where the exact AoT rate stops.
AOT_LONG=(--part d --seed "$SEED" --aot-layers 8)
