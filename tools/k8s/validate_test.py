"""Self-test of validate.py: the shipped manifests pass, and each kind of mistake it exists to
catch fails it (a checker that passes everything would make the CI step worthless).

Run by scripts/k8s-validate: python -m unittest discover -s tools/k8s -p validate_test.py
"""

import shutil
import tempfile
import unittest
from pathlib import Path

import validate

SHIPPED = validate.ROOT / "deploy" / "k8s"


class Validate(unittest.TestCase):
    def broken(self, file: str, old: str, new: str) -> list[str]:
        """The problems found once `old` is replaced by `new` in a copy of `file`."""
        with tempfile.TemporaryDirectory() as tmp:
            for path in SHIPPED.glob("*.yaml"):
                shutil.copy(path, tmp)
            target = Path(tmp, file)
            text = target.read_text()
            self.assertIn(old, text, f"{file} no longer holds {old!r}: update this test")
            target.write_text(text.replace(old, new, 1))
            return validate.validate(Path(tmp))

    def test_the_shipped_manifests_pass(self):
        self.assertEqual(validate.validate(SHIPPED), [])

    def test_an_unknown_field_of_a_built_in_kind_fails(self):
        problems = self.broken("api.yaml", "readinessProbe:", "readynessProbe:")
        self.assertTrue(any("readynessProbe" in p for p in problems), problems)

    def test_a_wrong_type_in_a_built_in_kind_fails(self):
        problems = self.broken("api.yaml", "minReplicas: 3", "minReplicas: three")
        self.assertTrue(any("minReplicas" in p for p in problems), problems)

    def test_a_keda_scaled_object_is_checked_against_its_crd(self):
        problems = self.broken("worker.yaml", "minReplicaCount: 2", "minReplicaCount: two")
        self.assertTrue(any("minReplicaCount" in p for p in problems), problems)
        problems = self.broken("worker.yaml", "cooldownPeriod:", "cooldownPeriodSecs:")
        self.assertTrue(any("cooldownPeriodSecs" in p for p in problems), problems)

    def test_an_unknown_kind_fails(self):
        problems = self.broken("worker.yaml", "kind: ScaledObject", "kind: ScaledThing")
        self.assertTrue(any("no schema for ScaledThing" in p for p in problems), problems)

    def test_a_namespace_fails(self):
        problems = self.broken("api.yaml", "  name: rushline-api\n", "  name: rushline-api\n"
                               "  namespace: prod\n")
        self.assertTrue(any("namespace" in p for p in problems), problems)

    def test_a_dangling_reference_fails(self):
        problems = self.broken("worker.yaml", "    name: rushline-worker\n  minReplicaCount",
                               "    name: rushline-workers\n  minReplicaCount")
        self.assertTrue(any("scales rushline-workers" in p for p in problems), problems)

    def test_a_metric_no_program_exports_fails(self):
        problems = self.broken("worker.yaml", "(rushline_queue_depth)", "(rushline_queue_size)")
        self.assertTrue(any("rushline_queue_size" in p for p in problems), problems)


if __name__ == "__main__":
    unittest.main()
