"""ADE20K class names / palette match mmsegmentation's ADE20KDataset.METAINFO."""

from segohem.data.datasets._ade20k_meta import ADE20K_CLASSES, ADE20K_PALETTE


def test_counts_and_types() -> None:
    assert isinstance(ADE20K_CLASSES, tuple)
    assert isinstance(ADE20K_PALETTE, tuple)
    assert len(ADE20K_CLASSES) == 150
    assert len(ADE20K_PALETTE) == 150
    assert all(isinstance(name, str) and name for name in ADE20K_CLASSES)


def test_names_distinct() -> None:
    assert len(set(ADE20K_CLASSES)) == 150


def test_palette_values() -> None:
    for rgb in ADE20K_PALETTE:
        assert isinstance(rgb, tuple) and len(rgb) == 3
        for v in rgb:
            assert type(v) is int and 0 <= v <= 255


def test_known_entries_from_source() -> None:
    assert ADE20K_CLASSES[:5] == ("wall", "building", "sky", "floor", "tree")
    # Upstream order ends with ..., "glass", "clock", "flag".
    assert ADE20K_CLASSES[-3:] == ("glass", "clock", "flag")
    assert ADE20K_CLASSES[7] == "bed"  # upstream has "bed " (trailing space), stripped here
    assert all(name == name.strip() for name in ADE20K_CLASSES)
    assert ADE20K_CLASSES.index("person") == 12
    assert ADE20K_PALETTE[0] == (120, 120, 120)
    assert ADE20K_PALETTE[1] == (180, 120, 120)
    assert ADE20K_PALETTE[-1] == (92, 0, 255)
    # (140, 140, 140) is used twice upstream: "road" and "skyscraper".
    assert ADE20K_PALETTE[ADE20K_CLASSES.index("road")] == (140, 140, 140)
    assert ADE20K_PALETTE[ADE20K_CLASSES.index("skyscraper")] == (140, 140, 140)
    assert len(set(ADE20K_PALETTE)) == 149
