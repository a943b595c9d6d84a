"""The API routers; app.py includes every router of ROUTERS."""

from __future__ import annotations

from fastapi import APIRouter

from dashboard.routes.auth import router as auth_router

ROUTERS: list[APIRouter] = [auth_router]
