"""Theory lab: Diffusion Blend on Gaussian-mixture data, where every target is exact (issue 6).

``mixture``     closed-form mixtures, VP marginals and exponential tilts (the exact fine-tuned,
                MORL and α/λ targets for linear rewards)
``denoiser``    exact ε-networks, posterior moments, the control u and its Jensen-gap linearisation ū
``sampling``    runs them through ``diffusion.ddim.ddim_step`` and ``blend.eps`` (DB-MPA, DB-KLA, DB-MPA-LS)
``metrics``     sliced W2, mode-weight error, standard errors and noise floors
``experiments`` the measurements of ``scripts/theory_lab.py``; ``plots`` their figures
"""
