"""The recipe section: a recipe run's measured test accuracy per framework beside the accuracy
its tutorial reports (reports/recipes.py writes the recipe block into the run's config).

On a stand-in dataset the section and a banner at the top of the report say so ("Fashion-MNIST
stand-in for MNIST: not comparable"); with settings changed from the recipe (fewer epochs, a
subset of the data) it says which, and that the run is not the tutorial's. Only the saved
results are read; a malformed block is shown as far as it is readable, never trusted as markup.
"""

from __future__ import annotations

import pandas as pd

from .data import number
from .doc import Banner, Bullets, Para, Section, Table, code, em, strong

TITLE = "Tutorial vs measured"  # its anchor, tutorial-vs-measured, names its template
OWN = "the model's own"


def recipe_block(results: dict) -> dict | None:
    """The run's recipe block (results.json → config → recipe), or None."""
    config = results.get("config") if isinstance(results, dict) else None
    block = config.get("recipe") if isinstance(config, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("recipe"), dict):
        return None
    return block


def _text(value: object) -> str:
    return "—" if value is None else str(value)


def _value(value: object) -> str:
    """An override's value: options as k=v (none for an empty set)."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return _text(value)


def _reported(reported: dict) -> str:
    value = number(reported.get("value"))
    if value is None:
        return "none reported"
    text = f"{100 * value:.4g} %"
    return text if reported.get("relation") == "=" else f"at least {text}"


def _overrides(block: dict) -> list[str]:
    overrides = block.get("overrides")
    if not isinstance(overrides, dict):
        return []
    out = []
    for key, change in overrides.items():
        if isinstance(change, dict):
            out.append(f"{key} {_value(change.get('used'))} (recipe: "
                       f"{_value(change.get('recipe'))})")
    return out


def recipe_banner(results: dict) -> list:
    """A banner at the top of the report when a recipe ran on a stand-in dataset."""
    block = recipe_block(results)
    if block is None or not block.get("stand_in"):
        return []
    return [Banner(strong(_text(block.get("label"))),
                   f": recipe {_text(block.get('name'))} trained on "
                   f"{_text(block.get('dataset_title'))}, not on the tutorial's "
                   f"{_text(block.get('recipe_dataset_title'))}; its accuracies measure the "
                   "same recipe on other data and cannot confirm or refute the tutorial's.")]


def recipe_section(results: dict, s: pd.DataFrame) -> Section | None:
    """The tutorial's reported accuracy beside each framework's measured one (``s``: the
    report's summary, one row per framework x model x dataset), or None for a run without a
    recipe."""
    block = recipe_block(results)
    if block is None:
        return None
    r = block["recipe"]
    reported = r.get("reported") if isinstance(r.get("reported"), dict) else {}
    stand_in = bool(block.get("stand_in"))
    overrides = _overrides(block)
    comparable = block.get("comparable") is True
    section = Section(TITLE)
    section.add(Para(
        "Recipe ", code(_text(block.get("name"))), f": {_text(r.get('title'))} from ",
        code(_text(r.get("tutorial"))), f", trained as the tutorial trains it "
        f"({_text(r.get('settings_source'))})."))
    if stand_in:
        section.add(Banner(strong(_text(block.get("label"))), ": the tutorial measured on "
                           f"{_text(block.get('recipe_dataset_title'))}, this run on "
                           f"{_text(block.get('dataset_title'))}."))
    if overrides:
        section.add(Para(strong("Not the tutorial's settings"), ": " + "; ".join(overrides)
                         + "."))
    if comparable:
        section.add(Para("The tutorial's data and settings: the numbers can be compared "
                         "(the notes below say where the run still differs)."))

    value = number(reported.get("value"))
    rows = [["the tutorial (reported)", _text(block.get("recipe_dataset_title")),
             _text(r.get("epochs")), _reported(reported), "—",
             [_text(reported.get("text")), " — ", em(_text(reported.get("source")))]]]
    epochs = _epochs_run(results)
    for _, row in s.iterrows():
        measured = number(row.get("accuracy_mean"))
        if measured is None:
            versus = "—"
        elif not comparable:
            versus = "not comparable"
        elif value is None:
            versus = "nothing reported"
        else:
            versus = f"{100 * (measured - value):+.2f} points"
        shown = "—" if measured is None else f"{100 * measured:.2f} %"
        rows.append([f"{row['framework']} (measured)",
                     f"{_text(block.get('dataset_title'))}" + (" (stand-in)" if stand_in else ""),
                     _text(epochs), shown, versus,
                     f"this run, after the last epoch (seeds: {_text(row.get('seeds'))})"])
    section.add(Table(("", "dataset", "epochs", "test accuracy", "measured − reported",
                       "source"), rows))
    section.add(Para(f"Reported on: {_text(reported.get('split'))}."))
    settings = [
        f"model {_text(r.get('model'))} with options {_options(r.get('model_options'))}; "
        f"init {_text(r.get('init') or OWN)}; L2 "
        f"{_text(OWN if r.get('weight_decay') is None else r.get('weight_decay'))}",
        f"{_text(r.get('optimizer'))} lr {_text(r.get('lr'))} (options: "
        f"{_options(r.get('optimizer_options'))}), batch {_text(r.get('batch_size'))}, "
        f"{_text(r.get('epochs'))} epochs"
        + (f" ({r['iterations']} iterations in the tutorial)" if r.get("iterations") else ""),
    ]
    notes = r.get("notes") if isinstance(r.get("notes"), list) else []
    section.add(Bullets([*settings, *(str(n) for n in notes)]))
    return section


def _options(options: object) -> str:
    if not isinstance(options, dict) or not options:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _epochs_run(results: dict) -> object:
    config = results.get("config") if isinstance(results, dict) else None
    return config.get("epochs") if isinstance(config, dict) else None

