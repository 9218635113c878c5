# config.sh: the flags of experiment 002 (sourced by run.sh).  Everything not
# listed is the MATH.md default fixture: d=6, K=3, p_k=2, random incoherent
# bases from seed 0, Karras rho=7, sigma in [0.02, 10].
SEED=0
SAMPLERS=euler,heun,rk4,dpm2,dpmpp-2m
# C1: error at sigma_min against the exact K=1 flow, Karras and exponential grids.
ORDER=(--sampler "$SAMPLERS" --steps 20,40,80,160,320 --samples 64 --seed "$SEED")
# C6: log-likelihood by change of variables (exact divergence) vs closed form;
# one octave finer, since the RK4 likelihood error has a large 5th-order term.
LIKELIHOOD=(--sampler "$SAMPLERS" --steps 40,80,160,320,640,1280 --samples 64 --seed "$SEED")
