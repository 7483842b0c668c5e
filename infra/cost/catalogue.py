"""The price catalogue: one YAML file per region, every price dated and sourced.

``infra/data/prices-<region>.yaml`` maps keys such as ``ec2/on-demand/g6.xlarge`` to a price,
its unit, the date it was taken and a source (a key of the file's ``sources`` table, which
holds a repository path at a commit or a URL). A key that is absent means "unknown": the
estimator reports such a resource as unpriced and never prices it at $0.

Two more tables, dated and sourced like the prices:

- ``gaps``: keys that are deliberately absent, with the reason: ``not-offered`` (AWS sells no
  such term, e.g. a 1-year standard RI for p5.48xlarge) or ``no-current-price`` (only a price
  from before a price change exists). The estimator puts the reason on the unpriced line.
- ``spot_advisor``: per instance type, AWS Spot Instance Advisor's interruption-frequency band
  and average saving, from which the estimator assumes the share of spot hours that falls back
  to on-demand (``infra.cost.spot``).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
Unit = Literal["hour", "month", "gb", "gb-month", "1m-requests"]


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(min_length=8, description="URL, or repository@commit:path")
    description: str = Field(min_length=10)


def _iso_date(value: object) -> object:
    if isinstance(value, str) and len(value) != 10:
        raise ValueError(f"date {value!r} must be YYYY-MM-DD")
    return value


class _Dated(BaseModel):
    """An entry that says when it was true and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    source: str

    @field_validator("date", mode="before")
    @classmethod
    def _iso(cls, value: object) -> object:
        return _iso_date(value)


class Price(_Dated):
    usd: float = Field(gt=0, description="never 0: a free or unknown item has no entry")
    unit: Unit
    note: str | None = None


class Gap(_Dated):
    """A key left out on purpose: why there is no price for it."""

    status: Literal["not-offered", "no-current-price"]
    reason: str = Field(min_length=20)

    @property
    def label(self) -> str:
        return "not offered" if self.status == "not-offered" else "no current price"


SpotBand = Literal["<5%", "5-10%", "10-15%", "15-20%", ">20%"]


class SpotAdvice(_Dated):
    """AWS Spot Instance Advisor's figures for one instance type (not a price)."""

    band: SpotBand
    savings_percent: int = Field(ge=0, le=100)


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    currency: Literal["USD"] = "USD"
    hours_per_month: float = Field(730, gt=0)
    sources: dict[str, Source]
    prices: dict[str, Price]
    gaps: dict[str, Gap] = Field(default_factory=dict)
    spot_advisor: dict[str, SpotAdvice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sourced(self) -> Catalogue:
        entries = [*self.prices.items(), *self.gaps.items(),
                   *((f"spot_advisor/{k}", v) for k, v in self.spot_advisor.items())]
        missing = sorted(f"{key} → {entry.source}" for key, entry in entries
                         if entry.source not in self.sources)
        if missing:
            raise ValueError("prices name unknown sources: " + ", ".join(missing))
        bad_keys = sorted(k for k in self.prices if k.count("/") < 2)
        if bad_keys:
            raise ValueError("price keys must be <service>/<kind>/<item>: " + ", ".join(bad_keys))
        both = sorted(set(self.prices) & set(self.gaps))
        if both:
            raise ValueError("keys both priced and listed as gaps: " + ", ".join(both))
        return self

    def why_missing(self, key: str) -> str:
        """The note of an unpriced line for ``key``: the gap's reason, or that none is known."""
        gap = self.gaps.get(key)
        if gap is None:
            return f"no price in the catalogue for {key}"
        return f"{gap.label}: {key}: {gap.reason}"

    @property
    def as_of(self) -> dt.date:
        """The catalogue's date: its newest price."""
        return max(price.date for price in self.prices.values())

    def get(self, key: str) -> Price | None:
        return self.prices.get(key)

    def usd(self, key: str) -> float | None:
        price = self.prices.get(key)
        return price.usd if price is not None else None

    def cite(self, key: str) -> str | None:
        """``"<date> <source ref>"`` for a price, or None when the price is unknown."""
        price = self.prices.get(key)
        if price is None:
            return None
        return f"{price.date.isoformat()} {self.sources[price.source].ref}"

    def as_yaml_dict(self) -> dict:
        data = self.model_dump(mode="json", exclude_none=True)
        return data


class CatalogueError(ValueError):
    """The catalogue file is missing or invalid."""


def catalogue_path(region: str, directory: Path | None = None) -> Path:
    return (directory or DATA_DIR) / f"prices-{region}.yaml"


def parse_catalogue(data: dict, *, source: str = "catalogue") -> Catalogue:
    from pydantic import ValidationError  # noqa: PLC0415

    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError(f"{source}: {exc}") from None


def read_catalogue(path: Path) -> Catalogue:
    if not path.is_file():
        raise CatalogueError(f"no price catalogue at {path}; known regions: "
                             + ", ".join(known_regions(path.parent)))
    return parse_catalogue(yaml.safe_load(path.read_text()) or {}, source=str(path))


@lru_cache(maxsize=8)
def load_catalogue(region: str = "us-east-1") -> Catalogue:
    """The packaged catalogue for ``region`` (cached)."""
    return read_catalogue(catalogue_path(region))


def known_regions(directory: Path | None = None) -> list[str]:
    directory = directory or DATA_DIR
    return sorted(p.stem.removeprefix("prices-") for p in directory.glob("prices-*.yaml"))


def write_catalogue(catalogue: Catalogue, path: Path, header: str = "") -> None:
    """Write ``catalogue`` as YAML, one flow-style line per price."""
    data = catalogue.as_yaml_dict()
    lines = [header.rstrip() + "\n" if header else "",
             yaml.safe_dump({k: data[k] for k in ("region", "currency", "hours_per_month")},
                            sort_keys=False),
             "\n", yaml.safe_dump({"sources": data["sources"]}, sort_keys=False, width=100)]
    for table in ("prices", "gaps", "spot_advisor"):
        if not data.get(table):
            continue
        lines.append(f"\n{table}:\n")
        for key in sorted(data[table]):
            entry = yaml.safe_dump(data[table][key], default_flow_style=True,
                                   sort_keys=False, width=1000).strip()
            lines.append(f"  {key}: {entry}\n")
    path.write_text("".join(lines))
