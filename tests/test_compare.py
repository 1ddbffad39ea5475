#!/usr/bin/python3
"""bench/compare.py's pure functions: RESULT parsing, the faster peer, the BLAS check's decision,
the peer-only environment and the met/not-met verdict. Plain unittest; needs no torch.

  python3 tests/test_compare.py        (CTest runs it as compare_py when python3 is present)
"""
import importlib.util
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in bench/
HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("compare", os.path.join(HERE, "..", "bench", "compare.py"))
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


class ParseResults(unittest.TestCase):
    def test_every_result_line_as_key_values(self):
        text = ("tuned-b64 (training, batch 64, 1 thread): 400 img/s\n"
                "RESULT case=tuned-b64 threads=1 img_per_s=401.5 conv_fwd_gflops=98.20 data=cifar10\n"
                "noise RESULT case=ignored\n"
                "RESULT case=fma-peak threads=2 isa=avx2+fma gflops=180.5\n")
        rs = compare.parse_results(text)
        self.assertEqual(len(rs), 2)
        self.assertEqual(rs[0]["case"], "tuned-b64")
        self.assertEqual(rs[0]["img_per_s"], "401.5")
        self.assertEqual(rs[0]["data"], "cifar10")
        self.assertEqual(rs[1], {"case": "fma-peak", "threads": "2", "isa": "avx2+fma", "gflops": "180.5"})

    def test_words_without_equals_are_skipped(self):
        self.assertEqual(compare.parse_results("RESULT peer=libtorch junk img_per_s=665"), [{"peer": "libtorch", "img_per_s": "665"}])

    def test_result_value_takes_the_first_line_holding_the_key(self):
        text = "RESULT case=a\nRESULT peer=pytorch train_img_per_s=517 test_acc=40.1\nRESULT train_img_per_s=1\n"
        self.assertEqual(compare.result_value(text, "train_img_per_s", "peer"), 517.0)

    def test_result_value_names_what_had_no_figure(self):
        with self.assertRaisesRegex(ValueError, "libtorch seed_models: no RESULT line with img_per_s="):
            compare.result_value("epoch 1: loss 2.3\n", "img_per_s", "libtorch seed_models")


class FasterPeer(unittest.TestCase):
    def test_the_larger_figure_wins(self):
        self.assertEqual(compare.faster_peer({"libtorch": 665.0, "Python": 517.0}), ("libtorch", 665.0))
        self.assertEqual(compare.faster_peer({"libtorch": 5400.0, "Python": 8500.0}), ("Python", 8500.0))

    def test_missing_or_zero_figures_are_ignored(self):
        self.assertEqual(compare.faster_peer({"libtorch": 900.0, "Python": None}), ("libtorch", 900.0))
        self.assertEqual(compare.faster_peer({"libtorch": 0.0, "Python": 12.0}), ("Python", 12.0))

    def test_no_figure_at_all_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "no peer gave a figure"):
            compare.faster_peer({"libtorch": None, "Python": None})


class BlasCheck(unittest.TestCase):
    def test_openblas_speeds_pass(self):
        self.assertIsNone(compare.blas_verdict(115.0))
        self.assertIsNone(compare.blas_verdict(70.0))
        self.assertIsNone(compare.blas_verdict(30.0))

    def test_reference_blas_is_refused_naming_the_speed_and_the_fix(self):
        msg = compare.blas_verdict(6.2)
        self.assertIsNotNone(msg)
        self.assertIn("6.2 GFLOP/s", msg)
        self.assertIn("reference BLAS", msg)
        self.assertIn("libopenblas0-pthread", msg)
        self.assertIsNotNone(compare.blas_verdict(29.9))

    def test_the_threshold_can_be_given(self):
        self.assertIsNotNone(compare.blas_verdict(80.0, minimum=100.0))
        self.assertIsNone(compare.blas_verdict(100.0, minimum=100.0))


class BusyCore(unittest.TestCase):
    def test_two_free_cores_give_no_note(self):
        self.assertIsNone(compare.busy_core_note(93.0, 185.0))
        self.assertIsNone(compare.busy_core_note(100.0, 180.0))

    def test_a_held_core_is_reported_with_the_scaling(self):
        note = compare.busy_core_note(94.7, 96.7)
        self.assertIsNotNone(note)
        self.assertIn("1.02x", note)
        self.assertIn("not reliable", note)


class PeerEnvironment(unittest.TestCase):
    def test_removes_only_the_forcing_variables(self):
        env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/usr/bin", "OMP_NUM_THREADS": "1"}
        self.assertEqual(compare.peer_env(env), {"PATH": "/usr/bin", "OMP_NUM_THREADS": "1"})
        self.assertIn("OPENBLAS_CORETYPE", env)  # the caller's environment is left as it was

    def test_an_environment_without_them_is_unchanged(self):
        self.assertEqual(compare.peer_env({"HOME": "/root"}), {"HOME": "/root"})

    def test_the_thread_count_reaches_openblas(self):
        env = {"OPENBLAS_NUM_THREADS": "8", "HOME": "/root"}
        self.assertEqual(compare.peer_env(env, 1), {"OPENBLAS_NUM_THREADS": "1", "HOME": "/root"})
        self.assertEqual(compare.peer_env({}, 2), {"OPENBLAS_NUM_THREADS": "2"})
        self.assertEqual(env["OPENBLAS_NUM_THREADS"], "8")


class Verdict(unittest.TestCase):
    def test_met_and_not_met(self):
        self.assertEqual(compare.verdict(1.5, 1.5), "yes")
        self.assertEqual(compare.verdict(1.49, 1.5), "**no**")
        self.assertEqual(compare.verdict(0.6, None), "")

    def test_median_of_known_values(self):
        self.assertEqual(compare.median_known([3.0, None, 1.0, 2.0]), 2.0)
        self.assertIsNone(compare.median_known([None]))

    def test_table_row_and_figures(self):
        self.assertEqual(compare.table_row(["a", "1", "x"]), "| a | 1 | x |")
        self.assertEqual(compare.img_s(10764.4), "10,764")
        self.assertEqual(compare.img_s(None), "–")


if __name__ == "__main__":
    unittest.main()
