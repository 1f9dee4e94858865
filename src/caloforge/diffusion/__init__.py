"""EDM diffusion (Karras et al. 2022, arXiv:2206.00364) around any backbone.

``precond`` turns a backbone ``F(x, c_noise, cond)`` into a denoiser ``D(x; sigma, cond)``,
``loss`` trains it, ``schedules`` builds noise-level grids and ``samplers`` integrates them.
"""
