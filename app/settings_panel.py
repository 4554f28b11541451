"""The settings side panel: model, device, keypoints, NMS, descriptor, ratio and RANSAC thresholds, and how the
keypoints are coloured.

Every change is applied live (``changed`` is emitted with the new ``AppSettings``) and remembered between runs in
``QSettings`` (organisation ``keynet-live``, application ``app``). The values shown first are ``AppSettings``'
defaults, which are ``keynet.config.TrackerConfig``'s. The keypoint colouring is a view option
(``keynet.render.RenderOptions.keypoints``), emitted by ``keypoints_changed``.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import cast

from PyQt6.QtCore import QSettings, Qt, pyqtSignal
from PyQt6.QtGui import QStandardItemModel
from PyQt6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from keynet.render import KEYPOINT_COLOURS, ONE_SCALE_NOTE

from .dialogs import WEIGHTS_FILES, ask_file
from .layout import button, laid_out
from .pipeline import default_view
from .settings import DEVICES, MODELS, AppSettings

KEYPOINT_LABELS = {"off": "Off", "score": "By score", "scale": "By scale", "rank": "By rank"}
KEYPOINTS_TIP = "How the drawn keypoints are coloured (shortcut K)."
SINGLE_SCALE_TIP = ("The detector runs at one scale (single-scale mode): every keypoint has the same scale, so "
                    "colouring by scale would show one colour.")


def load_settings(store: QSettings) -> AppSettings:
    """The settings saved in ``store``; a missing or unreadable value keeps its default (``TrackerConfig``'s)."""
    return AppSettings.from_values({f.name: store.value(f"settings/{f.name}") for f in fields(AppSettings)
                                    if store.contains(f"settings/{f.name}")})


def save_settings(settings: AppSettings, store: QSettings) -> None:
    for name, value in settings.to_dict().items():
        store.setValue(f"settings/{name}", value)
    store.sync()


def settings_store() -> QSettings:
    """The app's persistent settings (per user, in the platform's usual place)."""
    return QSettings("keynet-live", "app")


class SettingsPanel(QWidget):
    """A form over ``AppSettings``; emits ``changed`` on every edit.

    Args:
        settings: the values to show first.
        descriptors: descriptor names to offer, the first being the default.

    Signals:
        changed(AppSettings): the tracker settings were edited.
        keypoints_changed(str): the user chose a keypoint colouring (``RenderOptions.keypoints``; shown first:
            the app's default view's). "By scale" is disabled, and says why, while the settings' detector is
            single-scale.
    """

    changed = pyqtSignal(object)
    keypoints_changed = pyqtSignal(str)

    def __init__(self, settings: AppSettings, descriptors: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        form = QFormLayout(self)

        self.model = QComboBox()
        for key, label in MODELS.items():
            self.model.addItem(label, key)
        self.weights_file = QLineEdit()
        self.weights_file.setPlaceholderText("a Key.Net weights file (.pt, .pth)")
        weights_row = laid_out(QHBoxLayout(), (self.weights_file, 1),
                               button("…", self._browse_weights, "Choose a weights file"))

        self.device = QComboBox()
        for key, label in DEVICES.items():
            self.device.addItem(label, key)
        self.num_keypoints = QSpinBox(minimum=50, maximum=10000, singleStep=50)
        self.nms_size = QSpinBox(minimum=3, maximum=31, singleStep=2)
        self.descriptor = QComboBox()
        for name in descriptors:
            self.descriptor.addItem(name, name)
        self.ratio = QDoubleSpinBox(minimum=0.5, maximum=1.0, singleStep=0.01, decimals=2)
        self.ransac_threshold = QDoubleSpinBox(minimum=0.5, maximum=20.0, singleStep=0.5, decimals=1, suffix=" px")
        self.keypoint_colours = QComboBox()
        for key in ("off", *KEYPOINT_COLOURS):
            self.keypoint_colours.addItem(KEYPOINT_LABELS[key], key)

        form.addRow("Model", self.model)
        form.addRow("Weights file", weights_row)
        form.addRow("Device", self.device)
        form.addRow("Keypoints", self.num_keypoints)
        form.addRow("NMS size", self.nms_size)
        form.addRow("Descriptor", self.descriptor)
        form.addRow("Ratio test", self.ratio)
        form.addRow("RANSAC threshold", self.ransac_threshold)
        form.addRow("Keypoint colours", self.keypoint_colours)
        self.set_settings(settings)
        self.set_keypoints(default_view().keypoints)
        self.keypoint_colours.currentIndexChanged.connect(
            lambda: self.keypoints_changed.emit(self.keypoint_colours.currentData()))

        for combo in (self.model, self.device, self.descriptor):
            combo.currentIndexChanged.connect(self._emit)
        for spin in (self.num_keypoints, self.nms_size, self.ratio, self.ransac_threshold):
            spin.valueChanged.connect(self._emit)
        self.weights_file.editingFinished.connect(self._emit)

    @property
    def settings(self) -> AppSettings:
        return self._settings

    def set_settings(self, settings: AppSettings) -> None:
        """Show ``settings`` without emitting ``changed``."""
        widgets = [self.model, self.device, self.descriptor, self.num_keypoints, self.nms_size, self.ratio,
                   self.ransac_threshold, self.weights_file]
        for w in widgets:
            w.blockSignals(True)
        for combo, value in ((self.model, settings.model), (self.device, settings.device),
                             (self.descriptor, settings.descriptor)):
            index = combo.findData(value)
            combo.setCurrentIndex(max(index, 0))
        self.num_keypoints.setValue(settings.num_keypoints)
        self.nms_size.setValue(settings.nms_size | 1)
        self.ratio.setValue(settings.ratio)
        self.ransac_threshold.setValue(settings.ransac_threshold)
        self.weights_file.setText(settings.weights_file)
        for w in widgets:
            w.blockSignals(False)
        self._settings = settings  # the fields the panel does not show come from ``settings`` too
        self._settings = self._read()
        self._show_scale_mode()

    def set_keypoints(self, mode: str) -> None:
        """Show the keypoint colouring ``mode`` (``"off"`` or a ``KEYPOINT_COLOURS`` name) without emitting."""
        self.keypoint_colours.blockSignals(True)
        self.keypoint_colours.setCurrentIndex(max(self.keypoint_colours.findData(mode), 0))
        self.keypoint_colours.blockSignals(False)

    def _show_scale_mode(self) -> None:
        """Offer "By scale" only when the detector is multi-scale; in single-scale mode it says why it is not."""
        multi_scale = self._settings.tracker_config().detector.multi_scale
        model = cast(QStandardItemModel, self.keypoint_colours.model())  # a QComboBox's own model
        item = model.item(self.keypoint_colours.findData("scale"))
        item.setEnabled(multi_scale)
        item.setText(KEYPOINT_LABELS["scale"] if multi_scale else f"{KEYPOINT_LABELS['scale']} ({ONE_SCALE_NOTE})")
        item.setData("" if multi_scale else SINGLE_SCALE_TIP, Qt.ItemDataRole.ToolTipRole)
        self.keypoint_colours.setToolTip(KEYPOINTS_TIP if multi_scale else f"{KEYPOINTS_TIP}\n{SINGLE_SCALE_TIP}")

    def _read(self) -> AppSettings:
        return replace(
            self._settings,
            model=self.model.currentData(),
            weights_file=self.weights_file.text().strip(),
            device=self.device.currentData(),
            num_keypoints=self.num_keypoints.value(),
            nms_size=self.nms_size.value() | 1,
            descriptor=self.descriptor.currentData() or "",
            ratio=round(self.ratio.value(), 3),
            ransac_threshold=round(self.ransac_threshold.value(), 2),
        )

    def _emit(self) -> None:
        new = self._read()
        if new != self._settings:
            self._settings = new
            self.changed.emit(new)

    def _browse_weights(self) -> None:
        start = str(Path(self.weights_file.text()).parent) if self.weights_file.text() else ""
        ask_file(self, "Key.Net weights file", WEIGHTS_FILES, self.choose_weights_file, start)

    def choose_weights_file(self, path: str) -> None:
        """Use the weights file at ``path`` (selects the "Weights file" model)."""
        self.weights_file.setText(path)
        self.model.blockSignals(True)
        self.model.setCurrentIndex(self.model.findData("file"))
        self.model.blockSignals(False)
        self._emit()
