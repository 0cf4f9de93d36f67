import torch

from tagstream.model.training.loop import drop_ids
from tagstream.model.vocab import UNK


def test_bigram_dropout_replaces_only_the_given_columns_by_unknown():
    torch.manual_seed(0)
    extras = torch.randint(2, 50, (8, 40, 3))
    extras[:, 30:] = 0  # padding
    before = extras.clone()
    out = drop_ids(extras, (0, 1), 0.5)
    assert torch.equal(out[:, :, 2], extras[:, :, 2])  # another feature: untouched
    assert torch.equal(out[:, 30:], extras[:, 30:])  # padding stays padding
    changed = out[:, :30, :2] != extras[:, :30, :2]
    assert (out[:, :30, :2][changed] == UNK).all()
    assert 0.4 < changed.float().mean().item() < 0.6  # 480 draws at 0.5
    assert torch.equal(extras, before)  # the input is not changed in place


def test_bigram_dropout_at_zero_chance_changes_nothing():
    extras = torch.randint(0, 50, (4, 10, 2))
    assert torch.equal(drop_ids(extras, (0, 1), 0.0), extras)
