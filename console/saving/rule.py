"""Parse and check a save rule and its name and caption templates, keeping every name inside output_dir."""

from __future__ import annotations

import os
import re
import stat
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from ..fields import FieldError, Range, choice, flag, text
from ..messages import say, told
from ..typedpath import FORMS, typed_path

LAYOUTS = ("flat", "aitoolkit_edit", "aitoolkit_multi", "musubi", "fal_start_end", "civitai_edit", "flat_pairs")
TRAINER_LAYOUTS = ("aitoolkit_edit", "aitoolkit_multi", "musubi", "fal_start_end", "civitai_edit")
PAIR_LAYOUTS = (*TRAINER_LAYOUTS, "flat_pairs")
OUTPUT_FORMATS = ("png", "jpeg", "webp", "keep")
TRAINER_FORMATS = ("png", "jpeg", "webp")  # ai-toolkit finds controls as .jpg .jpeg .png .webp only
# Civitai's dataset guidelines accept .png, .jpg and .jpeg images only.
LAYOUT_FORMATS = {"civitai_edit": ("png", "jpeg")}
CAPTIONS = ("none", "prompt", "template")
CONFLICTS = ("skip", "overwrite", "rename")
CONFORMS = ("auto", "none", "refuse", "pad", "crop", "resize")  # refuse: the drawer's name for none
# What `auto` (the pair layouts' default) does to a control whose aspect is beyond the tolerance: resized to its
# target's pixels, as ai-toolkit (Kontext, Qwen-Image-Edit) and musubi do to every control while training anyway.
AUTO_CONFORM = "resize"
DEFAULT_TEMPLATE = "{stem}_{n}"
# Ours first, then the older console's names for the same things and the ones it added, so its users' rules still work.
NAME_VARIABLES = ("stem", "n", "index", "run", "task", "result", "sha8", "date",
                  "src_stem", "src_name", "src_ext", "task_id", "result_id", "result_index", "global_index")
CAPTION_VARIABLES = ("prompt", "trigger", *NAME_VARIABLES, "image_name", "image_path", "answer_text")
STEM_LIMIT = 200  # characters of replace_from / replace_to
NAME_LIMIT = 200  # bytes of a dataset's folder name (a file name holds 255; layouts add _control3 …)
_SAMPLE = {"stem": "image", "n": 1, "index": 1, "run": "r0", "task": "t0", "result": "i0", "sha8": "0123abcd",
           "date": "20250101", "src_stem": "image", "src_name": "image.png", "src_ext": "png", "task_id": "t0",
           "result_id": "i0", "result_index": 1, "global_index": 1, "prompt": "prompt", "trigger": "trigger",
           "image_name": "image.png", "image_path": "/out/image.png", "answer_text": "text"}
_FORMATTER = string.Formatter()


class RuleError(ValueError):
    """A save rule that cannot be used; str(e) names the field."""


ASPECT_TOLERANCE = Range(0, 10)  # how far a control's aspect may be from its target's (0.02 = 2 %)


# -- the rule ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SaveRule:
    """What to save, where and how (the JSON body of the save routes)."""

    output_dir: Path
    layout: str = "flat"
    name: str = "dataset"
    template: str = "{stem}_{n}"
    sequential: bool = False
    format: str = "keep"
    caption: str = "none"
    caption_template: str = "{prompt}"
    trigger: str = ""
    only_selected: bool = True
    conflict: str = "skip"
    aspect_tolerance: float = 0.02
    conform: str = "none"
    replace_from: str = ""
    replace_to: str = ""
    first_only: bool = False
    role_swap: bool = False
    resave: bool = False
    dry_run: bool = False
    append: bool = False
    template_given: bool = False  # set from the body: pair layouts keep the source's stem without a template

    @property
    def pairs(self) -> bool:
        return self.layout in PAIR_LAYOUTS

    @property
    def swapped(self) -> bool:
        """True when the result is the control and the source the target (pair layouts only)."""
        return self.role_swap and self.pairs

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SaveRule":
        """Return the rule in `data` with defaults per layout; raise RuleError naming a bad field."""
        if not isinstance(data, Mapping):
            raise RuleError(say("saving.rule_not_object"))
        unknown = sorted(set(data) - (set(cls.__dataclass_fields__) - _INTERNAL))
        if unknown:
            raise RuleError(say("saving.unknown_rule_fields", fields=", ".join(unknown)))
        layout = _choice(data, "layout", LAYOUTS, "flat")
        trainer = layout in TRAINER_LAYOUTS
        rule = cls(
            output_dir=_output_dir(data.get("output_dir")), layout=layout,
            name=_dataset_name(_get(data, "name", str, "") or "dataset"),
            template=_get(data, "template", str, "") or DEFAULT_TEMPLATE,
            template_given=bool(_get(data, "template", str, "")),
            sequential=_get(data, "sequential", bool, False),
            format=_format(data, layout, "png" if trainer else "keep"),
            caption=_choice(data, "caption", CAPTIONS, "prompt" if trainer else "none"),
            caption_template=_get(data, "caption_template", str, "") or "{prompt}",
            trigger=_get(data, "trigger", str, "").strip(),
            only_selected=_get(data, "only_selected", bool, True),
            conflict=_choice(data, "conflict", CONFLICTS, "skip"),
            aspect_tolerance=_tolerance(_get(data, "aspect_tolerance", float, 0.02)),
            conform=_conform(data, layout),
            replace_from=_stem_text(data, "replace_from"), replace_to=_stem_text(data, "replace_to"),
            first_only=_get(data, "first_only", bool, False),
            role_swap=_get(data, "role_swap", bool, False),
            resave=_get(data, "resave", bool, False),
            dry_run=_get(data, "dry_run", bool, False),
            append=_get(data, "append", bool, False),
        )
        check_template(rule.template, NAME_VARIABLES, "template")
        sample = relative_name(render(rule.template, _SAMPLE, "template"), "template")
        if rule.pairs and rule.template_given and len(sample.parts) > 1:
            raise RuleError(say("saving.template_has_folders", sample=repr(str(sample)), layout=layout))
        check_template(rule.caption_template, CAPTION_VARIABLES, "caption_template")
        return rule

    @staticmethod
    def limits() -> dict[str, Any]:
        """Return the bounds of the rule's number fields and its groups of layouts, as the page's form uses them."""
        return {"aspect_tolerance": ASPECT_TOLERANCE.as_json(), "layouts": list(LAYOUTS),
                "pair_layouts": list(PAIR_LAYOUTS), "trainer_layouts": list(TRAINER_LAYOUTS)}

    @classmethod
    def check_kept(cls, data: Any) -> None:
        """Raise RuleError unless `data` is a rule a save could use once it names its output folder (a preset's)."""
        if not isinstance(data, Mapping):
            raise RuleError(say("saving.rule_not_object"))
        # A preset may leave the output folder to the form; every other field is checked as a save checks it.
        cls.from_dict({**data, "output_dir": data.get("output_dir") or _ANY_FOLDER})

    def replaced(self, stem: str) -> str:
        """Return `stem` with replace_from turned into replace_to (every occurrence), as the older console did."""
        return stem.replace(self.replace_from, self.replace_to) if self.replace_from else stem


_INTERNAL = {"template_given"}  # derived from the body, never sent
_ANY_FOLDER = os.path.abspath(os.sep)


def _get(data: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    shown = f"'{name}'"
    try:
        if kind is bool:
            return flag(data.get(name), shown, default)
        if kind is str:
            return text(data.get(name), shown, default=default)
        return _number(data.get(name), shown, default)
    except FieldError as exc:
        raise RuleError(told(exc)) from None


def _number(value: Any, shown: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(shown, say("fields.not_number", field=shown))
    try:
        return float(value)
    except OverflowError:  # an integer too big for a float
        raise FieldError(shown, say("saving.number_out_of_range", field=shown)) from None


def _choice(data: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = _get(data, name, str, "")  # "" (a form's "default" option) means the default
    try:
        return choice(value, f"'{name}'", choices, default)
    except FieldError as exc:
        raise RuleError(told(exc)) from None


def _conform(data: Mapping[str, Any], layout: str) -> str:
    value = _choice(data, "conform", CONFORMS, "auto" if layout in PAIR_LAYOUTS else "none")
    return "none" if value == "refuse" else value


def _format(data: Mapping[str, Any], layout: str, default: str) -> str:
    value = _choice(data, "format", OUTPUT_FORMATS, default)
    accepted = LAYOUT_FORMATS.get(layout)
    if accepted and value != "keep" and value not in accepted:
        raise RuleError(say("saving.format_unsuited", format=value, layout=layout, accepted=", ".join(accepted)))
    return value


def _output_dir(value: Any) -> Path:
    if value is None or value == "":
        raise RuleError(say("saving.output_dir_required"))
    if not isinstance(value, str) or "\0" in value:
        raise RuleError(say("saving.output_dir_not_string"))
    path = typed_path(value)
    if not os.path.isabs(path):
        raise RuleError(say("saving.output_dir_not_absolute", value=repr(value[:200]), forms=FORMS))
    return Path(path)


def _dataset_name(value: str) -> str:
    if not value or value in (".", "..") or any(c in value for c in "/\\\0") or value.startswith("."):
        raise RuleError(say("saving.name_not_plain", value=repr(value[:80])))
    if len(value.encode("utf-8", "surrogateescape")) > NAME_LIMIT:
        raise RuleError(say("saving.name_too_long", limit=NAME_LIMIT))
    return value


def _stem_text(data: Mapping[str, Any], name: str) -> str:
    """Return replace_from / replace_to: text for a file stem, without slashes or control characters."""
    value = _get(data, name, str, "")
    if len(value) > STEM_LIMIT:
        raise RuleError(say("saving.stem_text_too_long", field=name, limit=STEM_LIMIT))
    if any(c in value for c in "/\\") or any(ord(c) < 32 for c in value):
        raise RuleError(say("saving.stem_text_bad_chars", field=name, value=repr(value[:80])))
    return value


def _tolerance(value: float) -> float:
    try:
        meaning = say("saving.tolerance_meaning", low=ASPECT_TOLERANCE.low, high=ASPECT_TOLERANCE.high)
        return ASPECT_TOLERANCE.check(value, "'aspect_tolerance'", meaning=meaning)
    except FieldError as exc:
        raise RuleError(told(exc)) from None


# -- templates --------------------------------------------------------------------------------

def check_template(template: str, allowed: tuple[str, ...], where: str) -> None:
    """Raise RuleError unless every {variable} is in `allowed`, without attribute access or conversions."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise RuleError(say("saving.template_invalid", where=where, said=str(exc))) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            raise RuleError(say("saving.template_unknown_variable", where=where, variable=f"{{{name}}}",
                                known=", ".join(allowed)))
        if conversion or "{" in (spec or ""):
            raise RuleError(say("saving.template_conversion", where=where, variable=f"{{{name}}}", example="{n:04d}"))
    render(template, _SAMPLE, where)


def render(template: str, values: Mapping[str, Any], where: str) -> str:
    """Fill a checked template; raise RuleError when a format spec does not suit its value."""
    try:
        return _FORMATTER.vformat(template, (), values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RuleError(say("saving.template_fill", where=where, said=str(exc))) from None


def relative_name(text: str, where: str) -> PurePosixPath:
    """Return a rendered name as a relative path, refusing anything that could leave output_dir."""
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise RuleError(say("saving.name_absolute", where=where, text=repr(text[:200])))
    if "\0" in text or any(part in ("", ".", "..") for part in parts):
        raise RuleError(say("saving.name_bad_parts", where=where, text=repr(text[:200])))
    return PurePosixPath(*parts)


def inside(root: Path, path: Path) -> bool:
    """Return True when `path`, with symlinks resolved, stays inside the resolved `root`."""
    resolved = resolved_path(path)
    return resolved is not None and resolved.is_relative_to(root)


def resolved_path(path: Path) -> Path | None:
    """Return `path` with symlinks resolved, or None for a symlink loop or an unreadable folder."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


class Resolver:
    """Resolve many paths in few folders fast: each folder once, then one lstat per file (a symlinked file in full)."""

    def __init__(self) -> None:
        self._folders: dict[Path, Path | None] = {}

    def __call__(self, path: Path) -> Path | None:
        """Return `path` with symlinks resolved (as resolved_path), or None."""
        if path.parent not in self._folders:
            self._folders[path.parent] = resolved_path(path.parent)
        folder = self._folders[path.parent]
        if folder is None or path.name in ("", ".", ".."):
            return resolved_path(path)
        try:
            mode = os.lstat(folder / path.name).st_mode
        except FileNotFoundError:
            return folder / path.name
        except OSError:
            return None
        return resolved_path(path) if stat.S_ISLNK(mode) else folder / path.name
