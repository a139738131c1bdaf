"""DG-Net for reid: joint discriminative and generative learning (Zheng et al., CVPR 2019)."""
