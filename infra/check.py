"""Offline infrastructure check (run: python -m infra.check; `make infra-check`).

Needs no AWS credentials and no AWS API; exits 1 when a step fails or lint reports an error.

1. `chalice package --merge-template infra/resources.json`: proves the app can be packaged at all
   (e.g. `@app.on_s3_event` cannot be) and produces the SAM template that is actually deployed.
   It also fails if a placeholder `iam_role_arn` (the stage's, or a function's under
   `lambda_functions`) survived the merge, i.e. some function did not get its real role from the
   merge template.
2. cfn-lint on the SAM template: catches schema/reference errors where they are written.
   cfn-lint validates SAM resources without running the transform, so it cannot see what the
   transform generates.
3. SAM -> CloudFormation with aws-sam-translator, offline: local code paths become a placeholder
   S3 URI and managed policy names resolve from the translator's bundled map instead of IAM
   (unknown names stay unresolved, and step 4 reports them as invalid ARNs).
4. cfn-lint on the translated template: sees the generated resources (stage, deployment,
   permissions, event source mappings), so it catches e.g. dependency cycles that step 2 misses.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "package"
SAM = OUT / "sam.json"
CFN = OUT / "cloudformation.json"
STAGE = "prod"
REGION = "us-east-1"
PLACEHOLDER_CODE = "s3://offline-placeholder/deployment.zip"
CODE_PROPERTY = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
# cfn-lint rule id -> one-line reason it does not apply. Prefer fixing the template.
IGNORED_RULES: dict[str, str] = {}


class StepFailed(Exception):
    pass


def package() -> dict[str, Any]:
    shutil.rmtree(OUT, ignore_errors=True)
    chalice = Path(sys.prefix) / "bin" / "chalice"
    cmd = [str(chalice), "package", "--stage", STAGE, "--merge-template", "infra/resources.json", str(OUT)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:  # chalice prints a traceback; its last lines say what is wrong
        raise StepFailed("\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:]))
    sam: dict[str, Any] = json.loads(SAM.read_text())
    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][STAGE]
    placeholders = {stage.get("iam_role_arn")} | {
        function.get("iam_role_arn") for function in stage.get("lambda_functions", {}).values()}
    placeholders.discard(None)
    roles = {name: r.get("Properties", {}).get("Role") for name, r in sam["Resources"].items()}
    stale = [name for name, role in roles.items() if isinstance(role, str) and role in placeholders]
    if stale:
        raise StepFailed(
            f"{', '.join(stale)}: Role is still the stage's placeholder iam_role_arn; "
            "override it in infra/build_template.py"
        )
    return sam


def translate(sam: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.model.exceptions import ExceptionWithMessage
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class OfflinePolicyLoader(ManagedPolicyLoader):
        def __init__(self) -> None:  # no IAM client: nothing is ever fetched
            self._policy_map = get_bundled_managed_policy_map("aws")

        def load(self) -> dict[str, str]:
            return self._policy_map or {}

    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        prop = CODE_PROPERTY.get(resource.get("Type", ""))
        props = resource.get("Properties", {})
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            props[prop] = PLACEHOLDER_CODE
    try:
        cfn = transform(sam, {}, OfflinePolicyLoader())
    except ExceptionWithMessage as exc:
        causes = [cause.message for cause in getattr(exc, "causes", ())]
        raise StepFailed("\n".join(causes or [exc.message])) from exc
    CFN.write_text(json.dumps(cfn, indent=2) + "\n")
    return cfn


def types(template: dict[str, Any]) -> Counter[str]:
    return Counter(r.get("Type", "?") for r in template.get("Resources", {}).values())


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    start = time.monotonic()
    ok = True

    def report(label: str, passed: bool, detail: str, lines: Sequence[str] = ()) -> None:
        nonlocal ok
        ok &= passed
        print(f"{'ok  ' if passed else 'FAIL'} {label:<32}{time.monotonic() - start:5.1f}s  {detail}")
        print("".join(f"     {line}\n" for line in lines), end="")

    def lint(path: Path) -> None:
        found = lint_file(path, ManualArgs(regions=[REGION], ignore_checks=list(IGNORED_RULES)))
        errors = sum(m.rule.id.startswith("E") for m in found)
        report(
            f"cfn-lint {path.name}",
            errors == 0,
            f"{errors} errors, {len(found) - errors} warnings",
            [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in found],
        )

    label = "chalice package"
    try:
        sam = package()
        report(label, True, str(SAM.relative_to(ROOT)))
        lint(SAM)
        label = "translate SAM -> CloudFormation"
        cfn = translate(sam)
        report(label, True, str(CFN.relative_to(ROOT)))
        lint(CFN)
    except StepFailed as exc:
        report(label, False, "failed:", str(exc).splitlines())
    else:
        sam_types, cfn_types = types(sam), types(cfn)
        print(f"{'resources by type':<42}{'sam':>4}{'cfn':>5}")
        for name in sorted(sam_types | cfn_types):
            print(f"  {name:<40}{sam_types[name] or '-':>4}{cfn_types[name] or '-':>5}")
        print(f"  {'total':<40}{sam_types.total():>4}{cfn_types.total():>5}")
    for rule, why in IGNORED_RULES.items():
        print(f"ignored {rule}: {why}")
    print(f"{'PASSED' if ok else 'FAILED'} in {time.monotonic() - start:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
