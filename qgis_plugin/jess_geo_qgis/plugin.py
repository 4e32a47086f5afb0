"""The plugin object QGIS creates: toolbar, menu entry, dialog and Processing provider."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .provider import JessGeoProvider

ICON_PATH = os.path.join(os.path.dirname(__file__), "icon.svg")
MENU = "&jess-geo"
TOOLBAR_NAME = "JessGeoToolbar"
ACTION_NAME = "JessGeoSegmentAction"
TRAIN_ACTION_NAME = "JessGeoTrainAction"


class JessGeoPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider: Optional[JessGeoProvider] = None
        self.toolbar = None
        self.action: Optional[QAction] = None
        self.train_action: Optional[QAction] = None
        self.dialog = None
        self.train_dialog = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name)
        if self.provider is None:
            self.provider = JessGeoProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS's name)
        self.initProcessing()
        main_window = self.iface.mainWindow()
        self.action = QAction(QIcon(ICON_PATH), "Segment with jess-geo", main_window)
        self.action.setObjectName(ACTION_NAME)
        self.action.setToolTip("Segment a raster into ground-cover classes with jess-geo")
        self.action.triggered.connect(self.show_dialog)
        self.toolbar = self.iface.addToolBar("jess-geo")
        self.toolbar.setObjectName(TOOLBAR_NAME)
        self.train_action = QAction(QIcon(ICON_PATH), "Train a jess-geo model", main_window)
        self.train_action.setObjectName(TRAIN_ACTION_NAME)
        self.train_action.setToolTip("Train a model from raster layers and a polygon layer of labels")
        self.train_action.triggered.connect(self.show_train_dialog)
        self.toolbar.addAction(self.action)
        self.toolbar.addAction(self.train_action)
        for action in (self.action, self.train_action):
            self.iface.addPluginToRasterMenu(MENU, action)

    def unload(self) -> None:
        for dialog in (self.dialog, self.train_dialog):
            if dialog is not None:
                if dialog.task is not None:
                    dialog.task.cancel()
                dialog.close()
                dialog.deleteLater()
        self.dialog = self.train_dialog = None
        for action in (self.action, self.train_action):
            if action is not None:
                self.iface.removePluginRasterMenu(MENU, action)
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        for action in (self.action, self.train_action):
            if action is not None:
                action.setParent(None)
                action.deleteLater()
        self.action = self.train_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def show_dialog(self) -> None:
        from .dialog import SegmentDialog

        if self.dialog is None:
            self.dialog = SegmentDialog(self.iface, self.iface.mainWindow())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    def show_train_dialog(self) -> None:
        from .train_dialog import TrainDialog

        if self.train_dialog is None:
            self.train_dialog = TrainDialog(self.iface, self.iface.mainWindow())
        self.train_dialog.show()
        self.train_dialog.raise_()
        self.train_dialog.activateWindow()
