import torch

# The test machines have 2 shared cores: one intra-op thread avoids oversubscription (several-fold faster here).
torch.set_num_threads(1)
