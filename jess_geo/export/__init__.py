"""Export a jess-geo model file to ONNX (fp32 or int8) for ONNX Runtime, OpenVINO and QGIS Deepness."""
