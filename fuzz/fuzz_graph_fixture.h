/* fuzz/fuzz_graph_fixture.h: the small labelled graph the split-file harness checks splits
 * against, and from which fuzz/gen_corpus.c writes the split-file seeds (they must agree). */
#ifndef LEANPROP_FUZZ_GRAPH_FIXTURE_H
#define LEANPROP_FUZZ_GRAPH_FIXTURE_H

/* 12 nodes: a ring plus chords; three classes. */
static const char lpfuzz_fixture_edges[] =
    "# fuzz fixture\n0 1\n1 2\n2 3\n3 4\n4 5\n5 6\n6 7\n7 8\n8 9\n9 10\n10 11\n11 0\n0 6\n2 8\n4 10\n1 7\n";
static const char lpfuzz_fixture_labels[] = "0 0\n1 1\n2 2\n3 0\n4 1\n5 2\n6 0\n7 1\n8 2\n9 0\n10 1\n11 2\n";

#endif
