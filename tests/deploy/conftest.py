"""Tests of the deployment files: the systemd unit, the Ansible role's defaults and template, the docs."""
