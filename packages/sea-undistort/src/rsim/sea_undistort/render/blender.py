"""Blender (bpy + Cycles) scene construction and the four renders of one Sea-Undistort scene.

Imported only inside render workers: ``bpy`` comes with the ``render`` extra (``rsim-sea-undistort[render]``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from rsim.core.io import atomic_path
from rsim.sea_undistort.render.params import sun_direction

VARIANTS = ("", "_no_waves", "_no_sunglint", "_ground")


def _bpy() -> Any:
    try:
        import bpy
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "sea-undistort render needs Blender's Python module: install rsim-sea-undistort[render] (bpy 4.2)"
        ) from exc
    return bpy


def _node(tree: Any, kind: str, **inputs: Any) -> Any:
    node = tree.nodes.new(kind)
    for name, value in inputs.items():
        node.inputs[name].default_value = value
    return node


def _seabed_material(bpy: Any, p: dict[str, Any]) -> Any:
    """Procedural seabed shader per type (noise/voronoi/wave textures into colour ramps and bump)."""
    mat = bpy.data.materials.new(f"seabed_{p['seabed_type']}")
    mat.use_nodes = True
    tree = mat.node_tree
    bsdf = tree.nodes["Principled BSDF"]
    coord = tree.nodes.new("ShaderNodeTexCoord")
    mapping = _node(tree, "ShaderNodeMapping")
    mapping.inputs["Location"].default_value = (p["seabed_texture_seed"] % 97, p["seabed_texture_seed"] % 89, 0)
    mapping.inputs["Scale"].default_value = (p["seabed_texture_scale"],) * 3
    tree.links.new(coord.outputs["Object"], mapping.inputs["Vector"])
    kind = p["seabed_type"]
    palettes = {
        "sand": [(0.62, 0.55, 0.40, 1), (0.80, 0.73, 0.55, 1)],
        "rock": [(0.18, 0.17, 0.15, 1), (0.45, 0.42, 0.36, 1)],
        "gravel": [(0.30, 0.28, 0.25, 1), (0.70, 0.66, 0.58, 1)],
        "seagrass": [(0.05, 0.16, 0.06, 1), (0.55, 0.50, 0.35, 1)],
    }
    if kind == "sand":
        tex = _node(tree, "ShaderNodeTexWave", Scale=1.5, Distortion=4.0, Detail=4.0)
    elif kind == "gravel":
        tex = _node(tree, "ShaderNodeTexVoronoi", Scale=25.0)
    elif kind == "rock":
        tex = _node(tree, "ShaderNodeTexVoronoi", Scale=0.5)
        tex.feature = "DISTANCE_TO_EDGE"
    else:
        tex = _node(tree, "ShaderNodeTexNoise", Scale=0.25, Detail=8.0, Roughness=0.7)
    tree.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    noise = _node(tree, "ShaderNodeTexNoise", Scale=0.4, Detail=6.0)
    tree.links.new(mapping.outputs["Vector"], noise.inputs["Vector"])
    mix = _node(tree, "ShaderNodeMath")
    mix.operation = "MULTIPLY_ADD"
    mix.inputs[1].default_value = 0.7
    tree.links.new(tex.outputs[0] if kind != "gravel" else tex.outputs["Distance"], mix.inputs[0])
    tree.links.new(noise.outputs["Fac"], mix.inputs[2])
    ramp = tree.nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = palettes[kind][0]
    ramp.color_ramp.elements[1].color = palettes[kind][1]
    if kind == "seagrass":
        ramp.color_ramp.elements[0].position, ramp.color_ramp.elements[1].position = 0.45, 0.55
    tree.links.new(mix.outputs[0], ramp.inputs["Fac"])
    tree.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.9
    bump = _node(tree, "ShaderNodeBump", Strength=0.6)
    tree.links.new(mix.outputs[0], bump.inputs["Height"])
    tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def _water_surface_material(bpy: Any, p: dict[str, Any]) -> Any:
    """Refracting water surface; shadow rays pass (lit seabed without caustic noise) [assumption]."""
    mat = bpy.data.materials.new("water_surface")
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    glass = _node(tree, "ShaderNodeBsdfGlass", IOR=p["water_ior"], Roughness=p["surface_roughness"])
    transparent = tree.nodes.new("ShaderNodeBsdfTransparent")
    path = tree.nodes.new("ShaderNodeLightPath")
    mix = tree.nodes.new("ShaderNodeMixShader")
    tree.links.new(path.outputs["Is Shadow Ray"], mix.inputs["Fac"])
    tree.links.new(glass.outputs["BSDF"], mix.inputs[1])
    tree.links.new(transparent.outputs["BSDF"], mix.inputs[2])
    tree.links.new(mix.outputs["Shader"], out.inputs["Surface"])
    return mat


def _water_volume_material(bpy: Any, p: dict[str, Any]) -> tuple[Any, Any]:
    """Absorbing + scattering water body (volume only); returns the material and its scatter node."""
    mat = bpy.data.materials.new("water_volume")
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.clear()
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    color = (*p["water_color"], 1.0)
    absorb = _node(tree, "ShaderNodeVolumeAbsorption", Color=color, Density=p["absorption_density"])
    scatter_color = (*(0.5 + 0.5 * c for c in p["water_color"]), 1.0)
    scatter = _node(tree, "ShaderNodeVolumeScatter", Color=scatter_color, Density=p["scatter_density"],
                    Anisotropy=p["scatter_anisotropy"])  # fmt: skip
    add = tree.nodes.new("ShaderNodeAddShader")
    tree.links.new(absorb.outputs[0], add.inputs[0])
    tree.links.new(scatter.outputs[0], add.inputs[1])
    tree.links.new(add.outputs[0], out.inputs["Volume"])
    return mat, scatter


def build_scene(p: dict[str, Any], *, threads: int = 1, device: str = "CPU") -> dict[str, Any]:
    """Build the scene of parameters ``p`` in a fresh Blender file; returns handles used by :func:`render_scene`."""
    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = device
    scene.cycles.samples = p["samples"]
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 6
    scene.cycles.transmission_bounces = 6
    scene.cycles.volume_bounces = 0  # single scattering
    scene.cycles.caustics_reflective = True
    scene.cycles.caustics_refractive = False
    scene.cycles.sample_clamp_indirect = 5.0
    scene.cycles.seed = p["seed"] * 100003 + p["index"]
    scene.render.threads_mode = "FIXED"
    scene.render.threads = max(1, threads)
    scene.render.resolution_x = scene.render.resolution_y = p["resolution_px"]
    scene.render.resolution_percentage = 100
    scene.render.use_file_extension = False
    scene.render.use_persistent_data = True  # the four variants reuse BVH/shaders (about 4x faster)
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.exposure = p["exposure"]

    # sky (Nishita: sun position, air and dust) and a sun lamp that produces the glint
    world = bpy.data.worlds.new("world")
    scene.world = world
    world.use_nodes = True
    sky = world.node_tree.nodes.new("ShaderNodeTexSky")
    sky.sky_type = "NISHITA"
    sky.sun_elevation = math.radians(p["sun_elevation_deg"])
    sky.sun_rotation = math.radians(p["sun_azimuth_deg"])
    sky.air_density, sky.dust_density = p["air_density"], p["dust_density"]
    sky.sun_disc = False  # the sun lamp (MIS-sampled) makes the glint; the sky disc only adds fireflies
    background = world.node_tree.nodes["Background"]
    background.inputs["Strength"].default_value = 0.25
    world.node_tree.links.new(sky.outputs["Color"], background.inputs["Color"])
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = p["sun_strength"]
    sun.data.angle = math.radians(p["sun_angle_deg"])
    d = sun_direction(p["sun_elevation_deg"], p["sun_azimuth_deg"])
    sun.rotation_mode = "QUATERNION"
    sun.rotation_quaternion = _look_quaternion(bpy, (-d[0], -d[1], -d[2]))
    scene.collection.objects.link(sun)

    size = 3.0 * p["footprint_m"] + 4.0 * abs(p["mean_depth_m"])
    res = 192 if p["resolution_px"] >= 256 else 64 if p["resolution_px"] >= 64 else 16
    # seabed: displaced, tilted grid at the mean depth
    bpy.ops.mesh.primitive_grid_add(
        x_subdivisions=res, y_subdivisions=res, size=size, location=(0, 0, p["mean_depth_m"])
    )
    seabed = bpy.context.active_object
    seabed.name = "seabed"
    tex = bpy.data.textures.new("seabed_height", "VORONOI" if p["seabed_type"] in ("rock", "gravel") else "CLOUDS")
    tex.noise_scale = max(0.05, size / 12 / p["seabed_texture_scale"]) if p["seabed_type"] != "gravel" else 0.4
    displace = seabed.modifiers.new("displace", "DISPLACE")
    displace.texture = tex
    displace.strength = p["seabed_displacement_m"]
    displace.mid_level = 0.5
    slope, az = math.radians(p["seabed_slope_deg"]), math.radians(p["seabed_slope_azimuth_deg"])
    seabed.rotation_euler = (slope * math.cos(az), slope * math.sin(az), 0.0)
    seabed.data.materials.append(_seabed_material(bpy, p))
    bpy.ops.object.shade_smooth()

    # water surface with ocean waves (the modifier is switched off for the flat, wave-free render)
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0, 0, 0))
    water = bpy.context.active_object
    water.name = "water_surface"
    ocean = water.modifiers.new("ocean", "OCEAN")
    ocean.geometry_mode = "GENERATE"
    ocean.resolution = 8 if p["resolution_px"] >= 256 else 5 if p["resolution_px"] >= 64 else 3
    ocean.spatial_size = max(4, round(size))
    ocean.wave_scale = p["wave_scale"]
    ocean.choppiness = p["choppiness"]
    ocean.wind_velocity = p["wind_speed_ms"]
    ocean.time = p["wave_time"]
    ocean.random_seed = p["wave_seed"]
    ocean.use_normals = True
    water.data.materials.append(_water_surface_material(bpy, p))
    bpy.ops.object.shade_smooth()

    # water body: a volume-only box below the lowest trough, down past the seabed
    bottom = p["mean_depth_m"] - p["seabed_displacement_m"] - size * math.tan(math.radians(p["seabed_slope_deg"])) - 1
    depsgraph = bpy.context.evaluated_depsgraph_get()
    trough = min(v.co.z for v in water.evaluated_get(depsgraph).data.vertices)
    top = min(-0.02, trough - 0.02)  # entirely below the wave troughs
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 0, (top + bottom) / 2))
    volume = bpy.context.active_object
    volume.name = "water_volume"
    volume.scale = (size, size, top - bottom)
    volume_mat, scatter = _water_volume_material(bpy, p)
    volume.data.materials.append(volume_mat)

    # nadir camera with a small tilt; sensor = the central 512 px of the simulated frame
    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = p["effective_sensor_width_mm"]
    cam_data.lens = p["focal_length_mm"]
    cam_data.clip_end = p["camera_altitude_m"] + 100.0
    camera = bpy.data.objects.new("camera", cam_data)
    tilt, taz = math.radians(p["tilt_deg"]), math.radians(p["tilt_azimuth_deg"])
    camera.location = (0.0, 0.0, p["camera_altitude_m"])
    camera.rotation_euler = (tilt * math.cos(taz), tilt * math.sin(taz), 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    receivers = bpy.data.collections.new("sun_receivers")
    for obj in (seabed, volume):
        receivers.objects.link(obj)
    return {"scene": scene, "sun": sun, "sky": sky, "receivers": receivers, "water": water, "ocean": ocean,
            "volume": volume,
            "scatter": scatter, "seabed": seabed}  # fmt: skip


def _look_quaternion(bpy: Any, direction: tuple[float, float, float]) -> Any:
    from mathutils import Vector

    return Vector(direction).to_track_quat("-Z", "Y")


def _configure(h: dict[str, Any], p: dict[str, Any], variant: str) -> None:
    """Switch the scene to one of the four released renders."""
    waves = variant in ("", "_no_sunglint")
    glint = variant == ""
    water = variant != "_ground"
    h["ocean"].show_render = waves
    # no glint: the sun lamp does not light the water surface (Cycles light linking), so its specular
    # reflection vanishes while refraction, seabed lighting and scattering stay identical
    h["sun"].light_linking.receiver_collection = None if glint else h["receivers"]
    h["water"].hide_render = not water
    h["volume"].hide_render = not water
    factor = p["clean_scatter_factor"] if variant == "_no_waves" else 1.0
    h["scatter"].inputs["Density"].default_value = p["scatter_density"] * factor


def render_scene(
    p: dict[str, Any], out_dir: str | os.PathLike[str], *, threads: int = 1, device: str = "CPU"
) -> list[Path]:
    """Render ``render_XXXX{,_no_waves,_no_sunglint,_ground}.png`` of one scene (each written atomically)."""
    bpy = _bpy()
    out_dir = Path(out_dir)
    handles = build_scene(p, threads=threads, device=device)
    written = []
    for variant in VARIANTS:
        _configure(handles, p, variant)
        final = out_dir / f"render_{p['scene_id']}{variant}.png"
        with atomic_path(final) as tmp:
            handles["scene"].render.filepath = str(tmp)
            bpy.ops.render.render(write_still=True)
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise RuntimeError(f"Blender wrote no image for {final.name}")
        written.append(final)
    return written
