"""Denoiser backbones, ``forward(x, c_noise, cond) -> tensor``, and their preset registry.

Backbones know nothing of noise schedules or detectors: the preconditioner turns sigma into
``c_noise`` and the data preprocessing turns energy, angles and detector into ``cond``.
"""
