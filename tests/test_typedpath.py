"""Paths as people paste them: quotes from a file manager's "copy path", file:// URLs, ~."""

from __future__ import annotations

import os

import pytest

from console.typedpath import FORMS, typed_path


@pytest.mark.parametrize("typed, meant", [
    ("/home/me/photos", "/home/me/photos"),
    ("  /home/me/photos \n", "/home/me/photos"),
    ("'/home/me/my photos'", "/home/me/my photos"),
    ('"/home/me/my photos"', "/home/me/my photos"),
    ("file:///home/me/my%20photos", "/home/me/my photos"),
    ("FILE://localhost/home/me/%E7%85%A7%E7%89%87", "/home/me/照片"),
    ("'file:///home/me/a%27b'", "/home/me/a'b"),
    ("~/photos", "~/photos"),  # the home folder (expected values are expanded in the test: HOME is per test)
    ("'~/photos'", "~/photos"),
    ("relative/photos", "relative/photos"),  # left relative: the caller refuses it (or a table resolves it)
    ("'/unbalanced", "'/unbalanced"),
    ("file://server/share/x", "server/share/x"),  # another machine's: not an absolute local path
    ("“/home/me/我的照片”", "/home/me/我的照片"),  # quotes typed by a Chinese input method
    ("「/home/me/photos」", "/home/me/photos"),
    ("‘~/photos’", "~/photos"),
    ("～/photos", "~/photos"),  # the full-width tilde
    ("～", "~"),
    ("/home/me/～/x", "/home/me/～/x"),  # inside a path it is a name
    ("“/home/me/photos", "“/home/me/photos"),
])
def test_a_typed_path_means_what_the_person_meant(typed, meant):
    assert typed_path(typed) == os.path.expanduser(meant)


def test_the_refusal_says_which_forms_are_accepted():
    assert "~/photos" in FORMS and "quotes" in FORMS and "file://" in FORMS
