"""The datasets, one module per group; each holds a dataset's artifacts, parser and spec together.

images               fashion_mnist (default), cifar10
bible                bible_es_en (default)
brown                brown_lm, brown_pos (default)
ner                  wnut16 (default), conll2003, resume
classification       spamassassin, rt_polarity (default), imdb, yelp_polarity, dbpedia
translation_paper    iwslt14_de_en, wmt16_en_de
lm_paper             ptb, wikitext103

`normlab.data.registry` collects them into `DATASETS`.
"""
