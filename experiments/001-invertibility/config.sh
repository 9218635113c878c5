# config.sh: the flags of experiment 001 (sourced by run.sh).  Everything not
# listed is the MATH.md default fixture: d=6, K=3, p_k=2, random incoherent
# bases from seed 0, Karras rho=7, sigma in [0.02, 10].
SEED=0
# C4 sweep: every explicit sampler, same grid and exponential decode grid.
SWEEP=(--sampler euler,heun,rk4,dpm2,dpmpp-2m --steps 20,40,80,160,320 --samples 256 --seed "$SEED")
# C4 absolute gate: Heun, 80 steps, same grid, <= 1e-5.
GATE=(--sampler heun --steps 80 --samples 256 --seed "$SEED")
# C5: the implicit midpoint rule, exactly invertible on the same grid.
MIDPOINT=(--sampler midpoint --steps 80,160,320 --samples 256 --seed "$SEED")
