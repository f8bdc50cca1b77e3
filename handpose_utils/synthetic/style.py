"""What the renderer draws beyond geometry: every realism feature is a switch, so each one's effect
can be measured (``python -m handpose_utils.realism`` does, with MediaPipe).

``RenderStyle()`` is the course's default look; ``RenderStyle.plain()`` turns everything off and
renders exactly what the first renderer did: capsule hands under one white lamp on
procedural patterns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class RenderStyle:
    # the hand
    poses: bool = True  # mostly everyday gestures (80 %, else any pose); else 60 %
    viewpoints: bool = True  # fingers up to 75 degrees from upright, tilted up to 45; else 120, 60
    flesh: bool = True  # real proportions: fingers that touch at the base, a thick rounded palm
    skin: bool = True  # skin that varies over the hand: lighter palm, redder tips, creases; soft light
    shadows: bool = True  # contact darkening where fingers meet, and shadows they cast on the hand
    sleeves: bool = True  # sleeves in clothes' colours, ending above the wrist (else any colour, to it)
    framing: bool = True  # FreiHAND's crops frame the hand as its real photos do (else larger)
    # the scene and the camera
    lighting: bool = True  # a key light from any side in front, warm to cool, and a room's fill (else one lamp)
    rooms: bool = True  # backgrounds like rooms and desks, out of focus (else procedural patterns)
    occluders: bool = True  # objects in front of the hand, and sometimes a second hand
    white_balance: bool = True
    vignette: bool = True
    defocus: bool = True
    motion_blur: bool = True
    noise: bool = True  # shot and read noise (else a little Gaussian noise, as before)
    jpeg: bool = True  # JPEG quality of phone and web photos (else 92)

    @classmethod
    def plain(cls) -> RenderStyle:
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def without(cls, *names: str) -> RenderStyle:
        """The default look with the features ``names`` turned off."""
        unknown = set(names) - set(cls.switches())
        if unknown:
            raise ValueError(f"RenderStyle has no switch {sorted(unknown)}; its switches: "
                             f"{', '.join(cls.switches())}")
        return replace(cls(), **{n: False for n in names})

    @classmethod
    def switches(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict:
        return asdict(self)

    def is_plain(self) -> bool:
        return not any(self.as_dict().values())


def as_style(style: RenderStyle | dict | None) -> RenderStyle:
    """A writer's ``style`` argument: None is the default look, a dict is a stamp's ``as_dict``."""
    if style is None:
        return RenderStyle()
    if isinstance(style, dict):
        unknown = set(style) - set(RenderStyle.switches())
        if unknown:
            raise ValueError(f"style has unknown switches {sorted(unknown)}; RenderStyle has "
                             f"{', '.join(RenderStyle.switches())}")
        return RenderStyle(**style)
    if not isinstance(style, RenderStyle):
        raise TypeError(f"style must be a RenderStyle, its as_dict() or None, got {style!r}")
    return style


SCENE_SWITCHES = ("lighting", "rooms", "occluders", "white_balance", "vignette", "defocus",
                  "motion_blur", "noise", "jpeg")
