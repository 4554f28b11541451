"""Small builders for the app's dialogs and panels: a push button wired to what it does, a box layout filled in order."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtWidgets import QBoxLayout, QLayout, QPushButton, QWidget

LayoutItem = QWidget | QLayout | tuple[QWidget | QLayout, int]  # a widget or layout, or one with its stretch factor


def button(text: str, on_click: Callable[[], object], tooltip: str = "") -> QPushButton:
    """A push button that calls ``on_click()`` when clicked."""
    push = QPushButton(text)
    if tooltip:
        push.setToolTip(tooltip)
    push.clicked.connect(lambda _=False: on_click())
    return push


def laid_out(layout: QBoxLayout, *items: LayoutItem) -> QBoxLayout:
    """``layout`` with ``items`` added in order (``(item, stretch)`` gives one a stretch factor)."""
    for item in items:
        part, stretch = item if isinstance(item, tuple) else (item, 0)
        if isinstance(part, QLayout):
            layout.addLayout(part, stretch)
        else:
            layout.addWidget(part, stretch)
    return layout
