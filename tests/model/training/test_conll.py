import pytest

from tagstream.model.training.conll import read_conll, read_conll_lines, split_dev


def test_reads_any_columns_docstart_tabs_and_spaces(tmp_path):
    f = tmp_path / "x.conll"
    f.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects\tVBZ\tO\n\n\n\ufeff\nPeter\tB-PER\n",
        encoding="utf-8",
    )
    assert read_conll(f) == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]


@pytest.mark.parametrize("line", ["lonely", "word X-PER"])
def test_malformed_lines_raise_with_line_number(line):
    with pytest.raises(ValueError, match=":2:"):
        read_conll_lines(["ok O", line])


def test_split_dev_is_seeded_and_disjoint():
    sents = [([str(i)], ["O"]) for i in range(100)]
    train, dev = split_dev(sents, 0.05, 13)
    assert len(dev) == 5 and len(train) == 95
    assert split_dev(sents, 0.05, 13) == (train, dev)
    assert not {s[0][0] for s in train} & {s[0][0] for s in dev}
