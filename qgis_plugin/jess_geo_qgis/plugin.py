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


class JessGeoPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider: Optional[JessGeoProvider] = None
        self.toolbar = None
        self.action: Optional[QAction] = None
        self.dialog = None

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
        self.toolbar.addAction(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)

    def unload(self) -> None:
        if self.dialog is not None:
            if self.dialog.task is not None:
                self.dialog.task.cancel()
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.action is not None:
            self.action.setParent(None)
            self.action.deleteLater()
            self.action = None
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
