"""The Chinese character vectors' index into LAC's table (``pretrained --lac``); reading the ONNX
file itself needs the train extra, which the tests do not install."""

from tagstream.model.training.pretrained import lac_index


def test_lac_index_keeps_single_characters_and_folds_full_width_forms():
    vocabulary = "0\t \n1\t1\n2\t北\n3\t北京\n4\tA\n5\t北\n6\tOOV\n"
    folds = "１\t1\nＡ\tA\nＢ\tB\n北京\t北\n"
    index = lac_index(vocabulary, folds)
    # spaces, words and the OOV entry are not characters; the first row of a character wins
    assert index == {"1": 1, "北": 2, "A": 4, "１": 1, "Ａ": 4}
