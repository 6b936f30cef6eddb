"""Customers (客户) of the simulated operator: cities, tiers, tenure, products.

Profiles are drawn once, before any contact, because the pipeline's
enrichment joins each contact to the compacted ``customers.profiles`` topic:
a contact whose customer is unknown there would not show the realism we
want to measure (VIP urgency, city of an outage, product-specific issues).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# (name, English name, region, weight ~ subscriber base, districts, ID-card area code)
CITIES: tuple[tuple[str, str, str, float, tuple[str, ...], str], ...] = (
    ("北京", "Beijing", "华北", 9.0, ("朝阳区", "海淀区", "丰台区", "通州区", "昌平区"), "110105"),
    ("上海", "Shanghai", "华东", 9.0, ("浦东新区", "闵行区", "徐汇区", "宝山区"), "310115"),
    ("广州", "Guangzhou", "华南", 7.0, ("天河区", "白云区", "番禺区", "海珠区"), "440106"),
    ("深圳", "Shenzhen", "华南", 7.0, ("南山区", "福田区", "宝安区", "龙岗区"), "440305"),
    ("杭州", "Hangzhou", "华东", 5.5, ("西湖区", "余杭区", "滨江区", "萧山区"), "330106"),
    ("南京", "Nanjing", "华东", 4.5, ("鼓楼区", "江宁区", "建邺区", "玄武区"), "320106"),
    ("苏州", "Suzhou", "华东", 4.5, ("工业园区", "姑苏区", "吴中区", "相城区"), "320508"),
    ("成都", "Chengdu", "西南", 6.0, ("武侯区", "锦江区", "高新区", "双流区"), "510107"),
    ("重庆", "Chongqing", "西南", 6.0, ("渝北区", "江北区", "沙坪坝区", "九龙坡区"), "500112"),
    ("武汉", "Wuhan", "华中", 5.0, ("洪山区", "武昌区", "江汉区", "汉阳区"), "420111"),
    ("长沙", "Changsha", "华中", 3.5, ("岳麓区", "雨花区", "开福区", "天心区"), "430104"),
    ("郑州", "Zhengzhou", "华中", 4.0, ("金水区", "二七区", "中原区", "郑东新区"), "410105"),
    ("西安", "Xi'an", "西北", 4.5, ("雁塔区", "未央区", "碑林区", "长安区"), "610113"),
    ("天津", "Tianjin", "华北", 4.5, ("南开区", "河西区", "滨海新区", "和平区"), "120104"),
    ("青岛", "Qingdao", "华东", 3.5, ("市南区", "崂山区", "黄岛区", "李沧区"), "370212"),
    ("沈阳", "Shenyang", "东北", 3.0, ("和平区", "浑南区", "铁西区", "皇姑区"), "210102"),
    ("哈尔滨", "Harbin", "东北", 2.5, ("南岗区", "道里区", "香坊区", "松北区"), "230103"),
    ("昆明", "Kunming", "西南", 2.5, ("五华区", "盘龙区", "官渡区", "呈贡区"), "530102"),
    ("厦门", "Xiamen", "华东", 2.0, ("思明区", "湖里区", "集美区", "海沧区"), "350203"),
    ("合肥", "Hefei", "华东", 3.0, ("蜀山区", "包河区", "庐阳区", "政务区"), "340104"),
    ("石家庄", "Shijiazhuang", "华北", 2.5, ("长安区", "桥西区", "裕华区", "新华区"), "130102"),
)
CITY_NAMES: tuple[str, ...] = tuple(c[0] for c in CITIES)
CITY_INFO = {c[0]: c for c in CITIES}

TIER_WEIGHTS = (("vip", 0.03), ("gold", 0.15), ("standard", 0.82))

# Mobile line type is exclusive; the others are add-ons held independently.
ADD_ONS: tuple[tuple[str, float], ...] = (
    ("broadband", 0.55),
    ("iptv", 0.22),
    ("family_plan", 0.25),
    ("data_pack", 0.18),
    ("cloud_storage", 0.08),
    ("video_vip", 0.12),
)


@dataclass(slots=True)
class Customer:
    """A customer as the simulator needs it; ``profile()`` is what gets published."""

    id: str
    tier: str
    city: str
    district: str
    region: str
    tenure_months: int
    products: tuple[str, ...]

    def profile(self) -> dict[str, object]:
        return {
            "customer_id": self.id,
            "tier": self.tier,
            "city": self.city,
            "region": self.region,
            "tenure_months": self.tenure_months,
            "products": list(self.products),
        }


def make_customers(rng: random.Random, n: int) -> list[Customer]:
    """``n`` customers; tenure is skewed (many young accounts, a long tail of loyal ones)."""
    city_w = [c[3] for c in CITIES]
    tiers = [t for t, _ in TIER_WEIGHTS]
    tier_w = [w for _, w in TIER_WEIGHTS]
    out: list[Customer] = []
    for i in range(n):
        name, _en, region, _w, districts, _code = rng.choices(CITIES, city_w)[0]
        tier = rng.choices(tiers, tier_w)[0]
        tenure = min(360, int(rng.expovariate(1 / 50)))
        if tier == "vip":
            tenure = max(tenure, rng.randrange(24, 200))
        mobile = "mobile_5g" if rng.random() < 0.62 else "mobile_4g"
        products = [mobile] + [p for p, share in ADD_ONS if rng.random() < share]
        if "iptv" in products and "broadband" not in products:
            products.remove("iptv")
        out.append(
            Customer(
                id=f"CU{i + 1:07d}",
                tier=tier,
                city=name,
                district=rng.choice(districts),
                region=region,
                tenure_months=tenure,
                products=tuple(products),
            )
        )
    return out


class CustomerBase:
    """Customers indexed the ways contact generation draws them (by product, by city)."""

    def __init__(self, customers: list[Customer]) -> None:
        self.all = customers
        self.by_product: dict[str, list[Customer]] = {}
        self.by_city: dict[str, list[Customer]] = {}
        self.by_city_product: dict[tuple[str, str], list[Customer]] = {}
        for c in customers:
            self.by_city.setdefault(c.city, []).append(c)
            for p in c.products:
                self.by_product.setdefault(p, []).append(c)
                self.by_city_product.setdefault((c.city, p), []).append(c)

    def pick(self, rnd: float, product: str | None = None, city: str | None = None) -> Customer:
        """A customer holding ``product`` (and living in ``city``), chosen by ``rnd`` in [0, 1)."""
        if city is not None and product is not None:
            pool = self.by_city_product.get((city, product)) or self.by_city.get(city) or self.all
        elif city is not None:
            pool = self.by_city.get(city) or self.all
        elif product is not None:
            pool = self.by_product.get(product) or self.all
        else:
            pool = self.all
        return pool[int(rnd * len(pool))]
