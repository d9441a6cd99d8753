import torch
import torch.nn.functional as F
from rsim.nar.models.losses import asl_loss, elr_regularizer, weighted_bce


def test_weighted_bce_normalisations():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    torch.testing.assert_close(weighted_bce(logits, y), per.mean())
    torch.testing.assert_close(weighted_bce(logits, y, w, "all_entries"), (per * w).sum() / 4)
    torch.testing.assert_close(weighted_bce(logits, y, w, "active_entries"), (per * w).sum() / 3)


def test_elr_regularizer_matches_formula():
    logits = torch.tensor([[3.0, -2.0, 0.0]])
    t = torch.tensor([[0.9, 0.1, 0.5]])
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(elr_regularizer(logits, t), torch.log(1 - t * p).mean())
    w = torch.tensor([[1.0, 0.0, 1.0]])
    torch.testing.assert_close(elr_regularizer(logits, t, w, "active_entries"), (torch.log(1 - t * p) * w).sum() / 2)


def test_asl_matches_formula_and_reduces_to_bce():
    logits = torch.tensor([[1.0, -0.5], [0.2, 2.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    pm = (p - 0.05).clamp(min=0)
    manual = -(y * (1 - p) * torch.log(p) + (1 - y) * pm**4 * torch.log(1 - pm)).mean()
    torch.testing.assert_close(asl_loss(logits, y), manual)
    torch.testing.assert_close(
        asl_loss(logits, y, gamma_neg=0, gamma_pos=0, clip=0), F.binary_cross_entropy_with_logits(logits, y)
    )
