"""Chinese (and some English / mixed) customer texts, composed with their true labels.

A classifier evaluated on a handful of templates learns the templates, so the
texts are built compositionally: channel style x politeness x context (city,
district, who is affected) x issue core phrasing x numbers / dates / amounts x
sentiment x optional escalation x ask x optional PII x closing. One day of
contacts yields hundreds of thousands of distinct strings.

Each text comes with the labels it was *meant* to carry (department,
business_type, support_system, bearer_network, sentiment, urgency, language,
...), in the value space of ``streams/data/default_rules.yaml`` and
``tests/data/voc_labelled.jsonl``, so the pipeline's tagging accuracy can be
measured on simulated traffic. Fragments avoid words that the domain defines
as escalation triggers (投诉, 赔偿, 态度差, 第N次, ...) unless an escalation is
intended, so the labels stay true.

Speed matters (the simulator must produce >= 20k events/s): all fragments are
tuples built at import, slots are filled lazily (only the ones a template
names), and picks use ``seq[int(random() * len(seq))]`` instead of
``random.choice``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vocflow.streams.tools.simulator.people import CITY_INFO

Labels = dict[str, Any]


def _f(spec: str) -> tuple[str, ...]:
    """Fragments from a ``|``-separated string; an empty alternative means "say nothing"."""
    return tuple(spec.split("|"))


@dataclass(frozen=True, slots=True)
class Issue:
    """One kind of customer problem, with the knowledge-map labels it implies.

    ``kind`` drives sentiment and the ask: faults and disputes are mostly
    negative, inquiries mostly neutral or positive. ``needs`` is the product a
    customer must hold to have this issue (no broadband, no broadband fault).
    """

    id: str
    dept: str
    business_type: str
    support_system: str
    bearer_network: str
    kind: str
    weight: float
    cores: tuple[str, ...]
    english: tuple[str, ...] = ()
    needs: str | None = None

    @property
    def ask(self) -> str:
        """Which list of closing asks fits: network faults want a technician, others a fix."""
        if self.kind == "fault" and self.dept == "network":
            return "repair"
        return self.kind


def _issue(
    spec: str,
    weight: float,
    cores: tuple[str, ...],
    english: tuple[str, ...] = (),
    needs: str | None = None,
) -> Issue:
    """``spec`` = "id department business_type support_system bearer_network kind"."""
    iid, dept, business_type, support_system, bearer_network, kind = spec.split()
    return Issue(
        iid,
        dept,
        business_type,
        support_system,
        bearer_network,
        kind,
        weight,
        cores,
        english,
        needs,
    )


ISSUES: tuple[Issue, ...] = (
    # ---------------------------------------------------------------- billing
    _issue(
        "bill.overcharge billing billing billing_system none dispute",
        9.0,
        _f(
            "这个月话费怎么多扣了{amt}块|{month}月的账单比平时多了{amt}元，我没用什么啊"
            "|莫名其妙扣了我{amt}块钱|话费突然扣了{amt}，短信说是什么{vas}的费用"
            "|我的套餐是{plan}，怎么这个月扣了{amt2}多|账单里有一笔{amt}元的{vas}费，我从来没订过"
            "|余额怎么一下子少了{amt}块|{date}扣了两次月租，一次{amt}元"
            "|话费扣得不对，我平时就打打电话，怎么会要{amt2}块|{person}的号码这个月多扣了{amt}元"
            "|为什么我的话费每个月都比套餐多{amt}块|月租不是{plan}吗，怎么收了{amt2}"
        ),
        _f(
            "I was charged {amt} yuan extra on my bill this month.|Why is my bill {amt2} yuan "
            "when my plan is only {amt} yuan?|There is a {amt} yuan charge for something I never "
            "ordered."
        ),
    ),
    _issue(
        "bill.invoice billing billing billing_system none inquiry",
        4.0,
        _f(
            "怎么开电子发票|{month}月的发票什么时候能开出来|公司报销要{month}月到{month2}月的话费发票"
            "|发票抬头写错了能重开吗|想打印一下{month}月的话费详单|增值税专票怎么申请"
            "|发票能不能合并开，{month}月到{month2}月的|电子发票发到哪个邮箱了，我没收到"
            "|单位报销需要发票，纳税人识别号怎么填"
        ),
        _f(
            "How can I get an e-invoice for {month} month's bill?|I need invoices from month "
            "{month} to {month2} for reimbursement."
        ),
    ),
    _issue(
        "bill.topup billing billing payment_gateway none fault",
        4.0,
        _f(
            "用{paytool}充了{amt}元话费到现在还没到账|{when}充的{amt}块钱一直显示处理中"
            "|充值显示成功了但是余额没变|{paytool}扣款成功了，话费没到账，充了{amt}"
            "|给{person}充的{amt}元话费没到账|交了{amt}块话费怎么查不到缴费记录"
            "|充了{amt}元显示交易成功，号码还是欠费状态"
        ),
        _f(
            "I topped up {amt} yuan via {paytool_en} but the balance did not change.|My payment "
            "of {amt} yuan went through {when_en} and still has not arrived."
        ),
    ),
    _issue(
        "bill.arrears billing billing billing_system none dispute",
        4.0,
        _f(
            "怎么突然停机了，我没欠费啊|欠费{amt}元停机了，交了钱怎么还没复机"
            "|余额还有{amt}块怎么就停机了|{when}突然打不出电话，提示欠费"
            "|交完费{hours}了还没开机|为什么余额是负数，欠了{amt}|停机了急用电话，麻烦给我开机"
        ),
    ),
    _issue(
        "bill.refund billing billing billing_system none request",
        3.0,
        _f(
            "销户后余额{amt}元怎么退|重复扣款了，那{amt}块钱什么时候退回来|上次说好的退款还没到账"
            "|多交了{amt}元话费能退吗|退费{amt}元说{n}个工作日到账，现在还没收到"
            "|余额{amt}块怎么退到银行卡"
        ),
        _f(
            "How do I get a refund of the {amt} yuan I was double charged?|When will my refund "
            "of {amt} yuan arrive?"
        ),
    ),
    _issue(
        "bill.roaming billing billing billing_system mobile dispute",
        1.5,
        _f(
            "出国回来账单多了{amt2}块国际漫游费|去香港玩了{n}天，漫游费扣了{amt2}"
            "|我开了漫游包怎么还按标准扣费|在国外没怎么用流量，扣了{amt2}多"
        ),
        _f("I was charged {amt2} yuan roaming fees after my trip abroad."),
    ),
    _issue(
        "bill.balance billing billing billing_system none inquiry",
        3.0,
        _f(
            "怎么查话费余额|想查一下这个月的消费明细|积分怎么查，能兑换什么|话费怎么充最方便"
            "|月租是多少，每个月几号扣|自动扣费怎么设置|怎么绑定银行卡自动交话费"
        ),
    ),
    # ---------------------------------------------------------------- network
    _issue(
        "net.broadband_down network broadband none fixed_broadband fault",
        8.0,
        _f(
            "家里宽带断网了|光猫{light}，上不了网|宽带从{when}开始就断了|家里的网{days}没法用了"
            "|WiFi连上了但是没网|宽带一直掉线，断断续续的|光猫{light}，重启也没用"
            "|家里网络中断{hours}了|{when}宽带突然上不去了|网线插着电脑显示无网络"
            "|光纤好像断了，{light}|宽带老是断网，一天断好几回"
        ),
        _f(
            "My home broadband has been down since {when_en}.|The internet is not working, the "
            "modem light is red.|No internet at home for {n} days now."
        ),
        needs="broadband",
    ),
    _issue(
        "net.broadband_slow network broadband none fixed_broadband fault",
        6.0,
        _f(
            "网速特别慢，测速才{mbps}兆，办的是{bw}的|打游戏延迟{ms}多，根本没法玩"
            "|晚上一到八九点网速就卡|{bw}的宽带看个视频都缓冲|网速太慢了，孩子上网课一直卡"
            "|宽带网速跟不上，测速只有{mbps}M|WiFi信号弱，房间里网速很慢|网络不稳定，开会老掉线"
        ),
        _f(
            "My broadband is very slow, only {mbps} Mbps on a {bw} plan.|Internet speed drops "
            "every evening, videos keep buffering."
        ),
        needs="broadband",
    ),
    _issue(
        "net.signal network signal none mobile fault",
        6.0,
        _f(
            "手机在{place}没信号|信号只有一格，打电话断断续续|{place}一直显示无服务"
            "|{place}信号特别差，电话打不出去|最近手机经常没信号|一到{place}就没信号"
            "|手机信号时有时无，接不到电话|{place}的基站是不是坏了，一点信号都没有"
        ),
        _f("No signal on my phone at {place_en}.|My phone keeps losing signal, calls drop."),
    ),
    _issue(
        "net.data_slow network data none mobile_5g fault",
        4.0,
        _f(
            "5G信号满格但是网速很慢|流量上网一直转圈打不开|手机上网特别卡，{place}尤其明显"
            "|移动数据开了也上不了网|5G网速还不如4G|流量网速只有几十K|手机网络{when}开始就用不了"
        ),
        _f(
            "Mobile data is extremely slow even with full 5G signal.|I cannot use mobile data "
            "since {when_en}."
        ),
    ),
    _issue(
        "net.call_quality network signal none mobile_4g fault",
        2.0,
        _f(
            "打电话对方听不清，有杂音|通话有回声，说话听不清楚|打电话老是掉线|通话断断续续的"
            "|接电话没声音，对方说听不到我"
        ),
    ),
    _issue(
        "net.iptv network broadband none iptv fault",
        1.5,
        _f(
            "电视直播一直卡顿缓冲|IPTV看着看着就黑屏|{tv}放不了，一直转圈|点播电影花屏"
            "|电视一直提示网络连接失败"
        ),
        needs="iptv",
    ),
    # ----------------------------------------------------------- tech support
    _issue(
        "tech.app_login tech_support account self_service_app none fault",
        5.0,
        _f(
            "{app}登录不上去，一直提示验证码错误|{app}一打开就闪退|验证码收不到，登不上{app}"
            "|{app}登录的时候提示系统繁忙|{app}实名认证人脸识别一直失败|密码忘了怎么登录{app}"
            "|{app}更新以后打不开了|{app}账号被锁了怎么解"
        ),
        _f(
            "I can't log in to the {app_en}, it keeps saying the verification code is wrong.|"
            "The {app_en} crashes every time I open it."
        ),
    ),
    _issue(
        "tech.router tech_support device none fixed_broadband inquiry",
        3.0,
        _f(
            "路由器WiFi密码怎么改|新买的路由器不会设置拨号|光猫的管理员密码是多少"
            "|想把WiFi名字改一下怎么弄|{brand}路由器怎么桥接光猫|家里装了mesh不会设置"
        ),
        needs="broadband",
    ),
    _issue(
        "tech.sim tech_support device none mobile fault",
        3.0,
        _f(
            "手机卡突然显示无SIM卡|SIM卡丢了怎么补卡|补卡需要带什么证件|手机卡坏了读不出来"
            "|想换个5G卡要去哪里办|手机卡被锁了要PUK码|eSIM怎么开通"
        ),
        _f("My phone suddenly says no SIM card.|I lost my SIM card, how do I get a new one?"),
    ),
    _issue(
        "tech.volte tech_support device none mobile_4g inquiry",
        1.5,
        _f("VoLTE高清通话怎么开|手机上的HD标志不见了|高清通话开了打电话还是没网络"),
    ),
    _issue(
        "tech.handset tech_support device none mobile fault",
        3.0,
        _f(
            "新手机{brand}收不到短信|双卡默认上网卡怎么设置|换了{brand}新手机不显示5G"
            "|手机5G开关在哪里打开|老人机不支持4G还能用吗|{brand}手表怎么开通一号双终端"
        ),
    ),
    _issue(
        "tech.settopbox tech_support device none iptv fault",
        1.5,
        _f("机顶盒开不了机|遥控器按了没反应|机顶盒一直停在启动画面|机顶盒升级以后看不了电视"),
        needs="iptv",
    ),
    # ------------------------------------------------------- sales / retention
    _issue(
        "sales.plan_change sales_retention plan crm none inquiry",
        7.0,
        _f(
            "想把套餐换成{plan}的|套餐太贵了想换个便宜点的|有没有流量多一点的套餐"
            "|{plan}的套餐包含多少流量|想改成{plan}，下个月生效吗|现在的套餐用不完，想降到{plan}"
            "|合约到期了想换个套餐|有没有适合老人的便宜套餐|学生套餐怎么办理|想办个融合套餐带宽带"
            "|给孩子办个副卡多少钱"
        ),
        _f(
            "I'd like to change my plan to the {plan_en} one.|Do you have a cheaper plan with "
            "more data?"
        ),
    ),
    _issue(
        "sales.promotion sales_retention promotion crm none inquiry",
        4.0,
        _f(
            "{promo}活动怎么参加|听说充{amt}送{amt2}，还有吗|老用户有什么优惠活动"
            "|{promo}的流量什么时候到账|{promo}送的话费怎么领|积分兑换流量在哪里兑"
            "|看到{promo}的广告，想了解一下|{promo}的优惠我能参加吗"
        ),
        _f("How do I join the {promo_en} promotion?|Are there any offers for existing customers?"),
    ),
    _issue(
        "sales.data_pack sales_retention data crm mobile request",
        3.0,
        _f(
            "流量不够用想加个流量包|流量快用完了，有没有日包|想订个{gb}G的加油包|流量包怎么办理"
            "|这个月流量超了，有便宜点的流量包吗"
        ),
        _f("I'm running out of data, can I add a {gb} GB data pack?"),
    ),
    _issue(
        "sales.broadband_new sales_retention plan crm fixed_broadband inquiry",
        2.0,
        _f(
            "想新装{bw}宽带多少钱|新房子想装宽带，{district}能装吗|宽带能提速到{bw}吗"
            "|办宽带送不送路由器|宽带续约有什么优惠"
        ),
    ),
    _issue(
        "sales.cancel sales_retention cancellation crm none request",
        4.0,
        _f(
            "我要销户|携号转网需要什么手续|这个号不用了想注销|宽带要拆机怎么办理"
            "|携号转网的授权码怎么获取|副卡不想要了怎么注销|要出国了想把号码停掉"
        ),
        _f("I want to cancel my account.|How do I port my number to another operator?"),
    ),
    _issue(
        "sales.vas_cancel sales_retention cancellation crm none request",
        2.5,
        _f(
            "怎么取消{vas}|{vas}不想要了帮我退订|把{vas}关掉|自动续费的{vas}怎么取消"
            "|帮我取消所有增值业务"
        ),
    ),
    # ------------------------------------------------------------- complaints
    _issue(
        "comp.attitude complaints service crm none conduct",
        2.5,
        _f(
            "上次营业厅工作人员态度很差|客服说话很冲，还挂我电话|装维师傅上门迟到了{hours}还不耐烦"
            "|{district}营业厅的营业员爱答不理的|刚才那个客服态度太差了|师傅来了玩手机，活也没干完"
        ),
    ),
    _issue(
        "comp.unauthorized complaints billing billing_system none conduct",
        1.5,
        _f(
            "没经过我同意私自给我开通了{vas}|我从来没办过，你们擅自给我开了{vas}，每月扣{amt}"
            "|{person}的号被强制开通了{vas}"
        ),
    ),
)
ISSUE_BY_ID = {i.id: i for i in ISSUES}

# Scenario issues: never drawn by baseline traffic.
OUTAGE_ISSUES: tuple[Issue, ...] = (
    _issue(
        "outage.broadband network broadband none fixed_broadband fault",
        0.0,
        _f(
            "{city}{district}这边整个小区都断网了|{city}是不是网络出故障了，{district}一片都上不了网"
            "|{district}从{hh}点开始宽带全断了，邻居家也一样，{city}的|{city}这边网速慢得要死，"
            "打开个网页都转圈|整栋楼都断网了，{city}{district}的|{city}{district}大面积断网，"
            "什么时候恢复|坐标{city}，家里宽带突然断了，光猫{light}|{city}网速慢到不行，"
            "是不是有故障|{city}{district}的宽带全都连不上"
        ),
        _f(
            "Internet outage in {city_en}, the whole neighborhood is offline.|Is there a network "
            "failure in {city_en}? No internet since {hh}:00."
        ),
    ),
    _issue(
        "outage.mobile network signal none mobile fault",
        0.0,
        _f(
            "{city}{district}手机突然没信号了，周围人都一样|{city}这边是不是基站坏了，一格信号都没有"
            "|在{city}{district}，手机显示无服务|{city}全城没信号吗，电话打不出去"
            "|{city}的5G突然没信号了，网速慢死|{district}这片手机都没信号，{city}的"
        ),
        _f(
            "No mobile signal at all in {city_en} {district_en}.|Everyone around me in "
            "{city_en} has no signal."
        ),
    ),
)

_QUESTION_MARKS = ("怎么", "多少", "什么", "哪", "能不能", "有没有", "是不是", "能否", "几点")
QUESTION_CORES = frozenset(
    core
    for issue in ISSUES + OUTAGE_ISSUES
    for core in issue.cores
    if core.endswith(("吗", "呢", "么")) or any(m in core for m in _QUESTION_MARKS)
)

ESCALATIONS: dict[str, tuple[str, ...]] = {
    "regulator": _f(
        "再不解决我就去工信部申诉|我要打12315|我已经在工信部网站上申诉了|不行我就找通管局"
        "|我会找媒体曝光的|我要找消协|再拖下去我找电视台"
    ),
    "compensation": _f(
        "耽误了我{days}的生意，必须赔偿|这个损失你们要给我补偿|要求减免这个月的月租"
        "|必须给我一个书面道歉和补偿|造成的经济损失谁来负责"
    ),
    "repeated": _f(
        "已经打了{cn}次电话了一直没解决|报修了{cn}次都没人来|这是我第{cn}次打电话了"
        "|每次都说会处理，到现在都没人管|转来转去没人处理|反映了半个月了还是没解决"
    ),
    "explicit": _f("我要投诉|我要投诉你们|太差劲了|这就是欺诈|我要给差评|这种服务太失望了"),
    "attitude": _f("而且上次的客服态度很差|装维师傅还很不耐烦|营业厅的人爱答不理|客服一直敷衍我"),
}
ESCALATION_KINDS = tuple(ESCALATIONS)
ESCALATION_WEIGHTS = (0.22, 0.18, 0.3, 0.2, 0.1)
ESCALATION_CUM = tuple(sum(ESCALATION_WEIGHTS[: i + 1]) for i in range(len(ESCALATION_WEIGHTS)))

SENTIMENT_BY_KIND: dict[str, tuple[float, float]] = {
    # kind -> (P(negative), P(negative) + P(neutral)); the rest is positive
    "fault": (0.72, 1.0),
    "dispute": (0.82, 1.0),
    "inquiry": (0.08, 0.72),
    "request": (0.25, 0.9),
    "conduct": (1.0, 1.0),
}

OPENERS = _f(
    "|||你好，|您好，|你好，|喂，你好|客服你好，|在吗？|亲，|麻烦问一下，|打扰一下，|请问，|哈喽，"
    "|客服，|人工，|你好客服，|早上好，|晚上好，|小姐姐你好，"
)
EMAIL_OPENERS = _f("尊敬的客服：|您好：|客服您好：|你好：|To 客服：")
CLOSINGS = _f("|||谢谢|谢谢！|麻烦了|麻烦尽快|辛苦了|谢谢啦|等你们回复|尽快回复我|感谢|多谢|拜托了")
EMAIL_CLOSINGS = _f("谢谢！|盼复。|此致 敬礼|请尽快回复，谢谢。|望尽快处理。|感谢！")
CONTEXT = _f(
    "我是{city}的用户|我在{city}{district}|{city}{district}这边|坐标{city}|我这边是{city}"
    "|我在{district}|{city}的|我人在{city}|我家在{city}{district}"
)
WHO = _f(
    "|||我是老用户了，用了{n}年了|我是你们的金卡用户|我帮{person}问一下|{person}的号码"
    "|我是学生|我是做生意的|我是{n}年的老客户"
)
NEG_EMOTION = _f(
    "真的很无语|太气人了|烦死了|搞什么啊|急死了|已经严重影响我上班了|孩子上网课都耽误了|到底怎么回事"
    "|太离谱了|真是服了|气死我了|一点都不方便|为什么总是这样|心累|能不能靠谱点|这都好几天了|我很着急"
    "|明天还要用，急|一直这样谁受得了|说好的服务呢|简直了|头都大了|莫名其妙"
)
NEUTRAL_TAIL = _f("||||麻烦帮忙看一下|请帮我查一下|想了解一下|帮我处理一下|帮忙看看|麻烦核实一下")
POS_EMOTION = _f(
    "你们服务一直挺好的|用了好多年了一直很满意|之前客服很耐心|你们的网络挺稳的|朋友推荐的，说挺划算"
    "|上次处理得很快，点赞|挺喜欢你们的服务|感觉你们的5G挺快的"
)
ASKS: dict[str, tuple[str, ...]] = {
    "repair": _f(
        "|麻烦尽快派人来修|什么时候能修好|请尽快处理|帮我查一下什么原因|能不能远程处理一下"
        "|麻烦安排师傅上门|今天能恢复吗|给个准确的时间|怎么解决"
    ),
    "fault": _f(
        "|帮我查一下什么原因|怎么解决|请尽快处理|麻烦看一下怎么回事|能不能帮我弄好|要怎么操作"
    ),
    "dispute": _f(
        "|请帮我查一下明细|把多扣的钱退给我|给我一个解释|麻烦核实一下|这个钱什么时候退|帮我查清楚"
    ),
    "inquiry": _f(
        "|怎么办理|需要什么条件|多少钱一个月|有什么要求吗|在哪里办|能详细说一下吗|怎么操作"
    ),
    "request": _f("|帮我办一下|现在能办吗|需要带什么|多久能办好|要去营业厅吗|线上能办吗"),
    "conduct": _f("|希望你们好好管一管|请给我一个说法|这样的服务要整改|必须处理这个人"),
}
QUESTION_ASKS = frozenset(
    a
    for asks in ASKS.values()
    for a in asks
    if a.endswith("吗")
    or "怎么" in a
    or "什么" in a
    or "多少" in a
    or "哪" in a
    or "多久" in a
    or "能不能" in a
)
REPEAT_PREFIX = _f(
    "上午刚打过电话|接着上次的问题|我昨天来过电话的|之前报过修|又来问一下|还是上次那个事|前两天反映过"
)
REDIAL_PREFIX = _f("刚才电话断了|刚才等了半天挂了|刚才没打通|再问一下|")
NEG_PUNCT = _f("！|！！|。|？？|！！！|")
FILLERS = _f("|||那个 |就是 |嗯 |呃 |喂 |喂 那个 |就是说 ")
WEIBO_TAGS: dict[str, tuple[str, ...]] = {
    "network": _f("#断网#|#网络故障#|#信号差#|"),
    "billing": _f("#乱扣费#|#话费#|"),
    "tech_support": _f("#APP#|"),
    "sales_retention": _f("#套餐#|#优惠活动#|"),
    "complaints": _f("#维权#|#服务差#|"),
}
MIX_OPENERS = _f("Hi，|Hello，|hi 客服，|Excuse me，")
MIX_CLOSERS = _f("please尽快处理|thanks|ASAP！|what's going on?|thx|pls check")
MIX_SWAPS = (
    ("宽带", "broadband"),
    ("账单", "bill"),
    ("退款", "refund"),
    ("套餐", "plan"),
    ("网速", "网速speed"),
    ("验证码", "验证码code"),
    ("发票", "invoice"),
    ("流量", "data流量"),
)
EN_OPENERS = _f("Hi, |Hello, |Dear customer service, |Hi there, |")
EN_CLOSERS = _f(" Please help.| Thanks.| Please fix it asap.| Thank you!|| Very frustrating.")
SMS_SHORT = ("TD", "退订", "0000", "取消", "QX")

SURVEY_POS = (
    _f("客服|小姐姐|工作人员|师傅|接线员|这位客服|{surname}工|工号{jobno}的客服|在线客服"),
    _f("很耐心|态度很好|很专业|讲得很清楚|处理很及时|效率很高|服务周到|很热情"),
    _f("，问题解决了|，一次就解决了|，很快就弄好了||，解释得很明白|，帮了大忙"),
    _f("，点赞|，满意|，谢谢|，五星好评|👍|！|，非常满意|"),
)
SURVEY_NEU = _f(
    "还行吧|一般般|还可以|问题解决了，就是等的时间有点长|还可以，就是流程有点复杂|希望以后能更快一点"
    "|凑合|没什么意见|马马虎虎|还行，电话打了好一会才通"
)
SURVEY_NEG_WAIT = _f(
    "排队等了{n}分钟才接通|等太久了|电话半天打不进来|人工太难转了|等了好久才有人回复"
)
SURVEY_NEG_ISSUE: dict[str, tuple[str, ...]] = {
    "network": _f("网还是断断续续的|信号还是不好|宽带还是很慢|说派人来修，人没来"),
    "billing": _f("钱还没退回来|多扣的话费没说清楚|账单的问题没弄明白"),
    "tech_support": _f("APP还是登不上|手机卡还是用不了|按说的步骤弄了也不行"),
    "sales_retention": _f("套餐还是没改成|说的优惠根本没有|销户流程太麻烦了"),
    "complaints": _f("问题根本没处理|等了半天没有结果"),
}
SURVEY_NEG_CONDUCT = _f("客服态度很差|接线员很不耐烦|感觉在敷衍我|说话很冲")
SURNAMES = _f("王|李|张|刘|陈|杨|黄|赵|吴|周|徐|孙|马|朱|胡|郭|何|林|罗|高")

_CN_DIGITS = "零一二三四五六七八九"
_ASR_TABLE = str.maketrans({c: " " for c in "，。！？；：、,.!?;:"})
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_number(n: int) -> str:
    """Chinese numerals for 0..999, the way customers write amounts (三十, 一百八十)."""
    if n < 10:
        return _CN_DIGITS[n]
    if n < 20:
        return "十" + (_CN_DIGITS[n % 10] if n % 10 else "")
    if n < 100:
        return _CN_DIGITS[n // 10] + "十" + (_CN_DIGITS[n % 10] if n % 10 else "")
    rest = n % 100
    head = _CN_DIGITS[n // 100] + "百"
    if rest == 0:
        return head
    if rest < 10:
        return head + "零" + _CN_DIGITS[rest]
    return head + _CN_DIGITS[rest // 10] + "十" + (_CN_DIGITS[rest % 10] if rest % 10 else "")


def id_card_number(rng: random.Random, area: str) -> str:
    """An 18-character national ID with a valid checksum (so PII maskers must catch it)."""
    year = rng.randrange(1950, 2006)
    month, day, seq = rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(1000)
    body = f"{area}{year}{month:02d}{day:02d}{seq:03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


def luhn_card_number(rng: random.Random) -> str:
    """A UnionPay-looking 16-digit card number that passes the Luhn check."""
    digits = [6, 2] + [rng.randrange(10) for _ in range(13)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


class _Slots(dict[str, str]):
    """Fills a template's ``{slot}`` on first use only: most templates name two or three."""

    __slots__ = ("gen", "gen_city", "gen_district")

    def __init__(self, gen: TextGenerator, city: str = "北京", district: str = "朝阳区") -> None:
        super().__init__()
        self.gen = gen
        self.gen_city = city
        self.gen_district = district

    def __missing__(self, key: str) -> str:
        value = self.gen.slot(key, self)
        self[key] = value
        return value


class TextGenerator:
    """Composes contact texts and survey comments from one ``random.Random``."""

    def __init__(self, rng: random.Random, config_rates: dict[str, float]) -> None:
        self.rng = rng
        self.r: Callable[[], float] = rng.random
        self.english_rate = config_rates.get("english_rate", 0.02)
        self.mixed_rate = config_rates.get("mixed_rate", 0.05)
        self.pii_rate = config_rates.get("pii_rate", 0.15)
        self.escalation_rate = config_rates.get("escalation_rate", 0.06)
        self._slot_fns: dict[str, Callable[[_Slots], str]] = self._build_slots()

    # ---------------------------------------------------------------- helpers
    def pick(self, seq: Sequence[str]) -> str:
        return seq[int(self.r() * len(seq))]

    def _build_slots(self) -> dict[str, Callable[[_Slots], str]]:
        r = self.r
        pick = self.pick

        def amt(_: _Slots) -> str:
            x = r()
            if x < 0.45:
                return str(int(5 + r() * 120))
            if x < 0.65:
                return f"{int(1 + r() * 60)}.{int(r() * 10)}"
            if x < 0.9:
                return cn_number(int(5 + r() * 20) * 5)
            return cn_number(int(1 + r() * 9) * 10) + "多"

        def amt2(_: _Slots) -> str:
            x = r()
            if x < 0.6:
                return str(int(100 + r() * 400))
            return cn_number(int(10 + r() * 50) * 10)

        def month(_: _Slots) -> str:
            return str(int(1 + r() * 12))

        def month2(s: _Slots) -> str:
            return str(min(12, int(s["month"]) + 1 + int(r() * 5)))

        def date(_: _Slots) -> str:
            x = r()
            d = int(1 + r() * 28)
            if x < 0.3:
                return f"{int(1 + r() * 12)}月{d}号"
            if x < 0.5:
                return f"{d}号"
            if x < 0.65:
                return "上周" + pick(_f("一|二|三|四|五|六|日"))
            if x < 0.85:
                return pick(_f("前天|昨天|今天|大前天|上个月底|月初"))
            return f"上个月{d}号"

        def when(s: _Slots) -> str:
            x = r()
            if x < 0.5:
                return pick(
                    _f("昨天晚上|今天早上|前天下午|中午|刚才|昨天半夜|今天一大早|上午|周末|这两天")
                )
            if x < 0.75:
                return f"{int(6 + r() * 17)}点多"
            return "从" + s["date"]

        def days(_: _Slots) -> str:
            return (
                pick(_f("两天|三天|一个星期|半个月|好几天|一整天|四五天"))
                if r() < 0.6
                else (f"{int(2 + r() * 9)}天")
            )

        def hours(_: _Slots) -> str:
            return (
                pick(_f("一上午|一晚上|半天|一下午"))
                if r() < 0.4
                else (f"{int(2 + r() * 10)}个小时")
            )

        def plan(_: _Slots) -> str:
            p = pick(_f("19|29|39|58|68|88|99|128|158|199|239"))
            return pick((f"{p}元的套餐", f"{p}的套餐", f"{p}元", f"{p}档", f"{p}块的5G套餐"))

        def n(_: _Slots) -> str:
            return str(int(2 + r() * 8))

        def cn(_: _Slots) -> str:
            return pick(_f("两|三|四|五|六|好几|七八"))

        def city(s: _Slots) -> str:
            return s.gen_city

        def district(s: _Slots) -> str:
            return s.gen_district

        def city_en(s: _Slots) -> str:
            return CITY_INFO[s.gen_city][1]

        def district_en(s: _Slots) -> str:
            return "district" if r() < 0.5 else "downtown"

        fixed: dict[str, tuple[str, ...]] = {
            "vas": _f(
                "彩铃|视频会员|来电提醒|游戏包|阅读包|音乐包|云盘会员|流量加油包|国际长途包|天气预报短信"
                "|视频彩铃|安全管家|手机报"
            ),
            "paytool": _f("微信|支付宝|银行卡|云闪付|营业厅APP|充值卡|网银"),
            "paytool_en": _f("WeChat Pay|Alipay|bank card|the app"),
            "light": _f(
                "LOS灯红了|光信号灯一直闪红|PON灯一直在闪|指示灯全灭了|红灯一直亮着|网络灯不亮|亮红灯"
            ),
            "bw": _f("100M|200M|300M|500M|千兆|1000M|百兆"),
            "place": _f(
                "家里|小区里|地下车库|电梯里|公司|卧室|楼道|地铁上|办公室|车库|老家|店里|厂里|学校"
            ),
            "place_en": _f("home|the office|the parking garage|the subway"),
            "brand": _f("华为|小米|苹果|iPhone|OPPO|vivo|荣耀|三星|一加|红米"),
            "promo": _f(
                "双十一|年终回馈|老用户专享|存费送机|5G升级|校园|宽带提速|充值送流量|积分兑换|周年庆"
            ),
            "promo_en": _f("Double 11|year-end|loyalty|5G upgrade"),
            "person": _f("老人|孩子|我妈|我爸|我老婆|我老公|家里老人|我女儿|我儿子|我同事"),
            "tv": _f("电视直播|IPTV|点播|电视|回看"),
            "app": _f("APP|营业厅APP|小程序|手机营业厅|掌厅|客户端"),
            "app_en": _f("app|mobile app|mini program"),
            "surname": SURNAMES,
            "when_en": _f("yesterday|this morning|last night|two days ago"),
            "plan_en": _f("58 yuan|99 yuan|128 yuan|cheapest|unlimited"),
        }
        fns: dict[str, Callable[[_Slots], str]] = {
            "amt": amt,
            "amt2": amt2,
            "month": month,
            "month2": month2,
            "date": date,
            "when": when,
            "days": days,
            "hours": hours,
            "plan": plan,
            "n": n,
            "cn": cn,
            "city": city,
            "district": district,
            "city_en": city_en,
            "district_en": district_en,
            "mbps": lambda _: str(int(1 + r() * 40)),
            "ms": lambda _: str(int(100 + r() * 800)),
            "gb": lambda _: str(pick(_f("1|2|3|5|10|20|30|50"))),
            "hh": lambda _: str(int(7 + r() * 16)),
            "jobno": lambda _: str(int(1000 + r() * 9000)),
        }
        for name, frags in fixed.items():
            fns[name] = self._picker(frags)
        return fns

    def _picker(self, frags: tuple[str, ...]) -> Callable[[_Slots], str]:
        pick = self.pick
        return lambda _: pick(frags)

    def slot(self, key: str, slots: _Slots) -> str:
        return self._slot_fns[key](slots)

    def _fill(self, template: str, slots: _Slots) -> str:
        return template.format_map(slots) if "{" in template else template

    def _pii(self, slots: _Slots) -> tuple[str, list[str]]:
        r = self.r
        x = r()
        if x < 0.6:
            phone = f"1{'3456789'[int(r() * 7)]}{int(r() * 1e9):09d}"
            pre = self.pick(_f("我的号码是|手机号|联系电话|号码|回电请打|机主号码"))
            return f"{pre}{phone}", ["phone"]
        if x < 0.7:
            # customers give a mailbox for the bill or the reply; the local part as
            # people pick them (pinyin, a birthday, a QQ number)
            local = self.pick(_f("zhang.wei|liuyang88|wangfang_sh|chenjie1990|li.na|xiaoming")) + (
                f"{int(r() * 1e4)}" if r() < 0.5 else ""
            )
            if r() < 0.3:
                local = str(int(1e8 + r() * 9e8))
            domain = self.pick(_f("qq.com|163.com|126.com|sina.com|foxmail.com|outlook.com"))
            pre = self.pick(_f("我的邮箱是|邮箱|发到我邮箱|电子邮件|回复请发到"))
            return f"{pre}{local}@{domain}", ["email"]
        if x < 0.85:
            area = CITY_INFO[slots.gen_city][5]
            return "身份证号" + id_card_number(self.rng, area), ["id"]
        return self.pick(_f("银行卡号|卡号|扣款的卡是")) + luhn_card_number(self.rng), ["card"]

    # ------------------------------------------------------------ contact text
    def contact_text(
        self,
        issue: Issue,
        channel: str,
        city: str,
        district: str,
        *,
        attempt: int = 1,
        unsolved_before: bool = False,
        redial: bool = False,
        scenario: str | None = None,
        promo: str | None = None,
        mention_city: bool | None = None,
    ) -> tuple[str, Labels]:
        """One customer text about ``issue`` and the labels it was built to carry.

        Escalation (-> department ``complaints``) becomes likelier with each
        attempt and when the previous contact did not solve the issue, as in
        DOMAIN.md ("repeated unresolved issues" go to complaints).
        """
        r = self.r
        pick = self.pick
        slots = _Slots(self, city, district)
        if promo is not None:
            slots["promo"] = promo

        # sentiment and escalation
        p_neg, p_neu = SENTIMENT_BY_KIND[issue.kind]
        x = r()
        sentiment = "negative" if x < p_neg else "neutral" if x < p_neu else "positive"
        esc_p = self.escalation_rate
        if issue.kind in ("fault", "dispute"):
            esc_p *= 1.5
        if attempt > 1:
            esc_p += 0.12 * (attempt - 1) + (0.2 if unsolved_before else 0.0)
        escalation: str | None = None
        if issue.kind != "conduct" and r() < min(0.85, esc_p):
            y = r()
            escalation = "explicit"
            for kind, cum in zip(ESCALATION_KINDS, ESCALATION_CUM, strict=True):
                if y < cum:
                    escalation = kind
                    break
            sentiment = "negative"

        # language
        x = r()
        english = bool(issue.english) and x < self.english_rate and channel != "sms"
        mixed = not english and x < self.english_rate + self.mixed_rate and channel != "sms"
        pii: list[str] = []
        city_named = False

        if channel == "sms" and issue.id == "sales.vas_cancel" and r() < 0.35:
            text = pick(SMS_SHORT) + ("" if r() < 0.6 else pick(_f("彩铃|游戏包|视频会员|")))
            sentiment, escalation, language = "neutral", None, "zh"
        elif english:
            slots["amt"] = str(int(5 + r() * 120))
            slots["amt2"] = str(int(100 + r() * 400))
            slots["bw"] = pick(_f("100M|200M|300M|500M|1000M"))
            text = self._fill(pick(issue.english), slots)
            if r() < 0.4 or scenario == "outage":
                if "city_en" not in slots:
                    text += f" I'm in {CITY_INFO[city][1]}."
                city_named = True
            if escalation == "regulator":
                text += pick(_f(" I will file a complaint with the MIIT.| I will call 12315."))
            elif escalation is not None:
                text += pick(
                    _f(
                        " I want to file a complaint.| This is the third time I call about this!"
                        "| I demand compensation."
                    )
                )
            if r() < self.pii_rate * 0.5:
                text += f" My number is 1{'3456789'[int(r() * 7)]}{int(r() * 1e9):09d}."
                pii.append("phone")
            opener = pick(EN_OPENERS)
            if opener and not text.startswith(("I ", "I'")):
                text = text[0].lower() + text[1:]
            text = opener + text + pick(EN_CLOSERS)
            language = "en"
        else:
            clauses: list[str] = []
            if redial:
                clauses.append(pick(REDIAL_PREFIX))
            elif attempt > 1 and escalation != "repeated":
                clauses.append(pick(REPEAT_PREFIX))
            want_city = mention_city if mention_city is not None else r() < 0.3
            template = pick(issue.cores)
            core = self._fill(template, slots)
            if "city" in slots:
                city_named = True
            elif want_city:
                clauses.append(self._fill(pick(CONTEXT), slots))
                city_named = "city" in slots
            if r() < 0.25:
                clauses.append(self._fill(pick(WHO), slots))
            if sentiment == "positive" and r() < 0.7:
                clauses.append(pick(POS_EMOTION))
            clauses.append(core)
            if sentiment == "negative":
                if r() < 0.75:
                    clauses.append(pick(NEG_EMOTION))
                end = pick(NEG_PUNCT) or "！"
            else:
                tail = pick(NEUTRAL_TAIL)
                if tail:
                    clauses.append(tail)
                end = "？" if template in QUESTION_CORES and not tail else "。"
            sentences = ["，".join(c for c in clauses if c) + end]
            if escalation is not None:
                sentences.append(self._fill(pick(ESCALATIONS[escalation]), slots) + "！")
            ask = pick(ASKS[issue.ask])
            if ask:
                sentences.append(ask + ("？" if ask in QUESTION_ASKS else "。"))
            if r() < self.pii_rate:
                frag, pii = self._pii(slots)
                sentences.append(frag + "。")
            if channel in ("chat", "wechat", "app", "email") and r() < 0.5:
                closing = pick(CLOSINGS)
                if closing:
                    sentences.append(closing if closing[-1] in "！。" else closing + "。")
            text = "".join(sentences)
            language = "zh"
            if mixed:
                text = self._mix(text)
                language = "mixed"

        text = self._channel_style(text, channel, issue, language)
        labels: Labels = {
            "department": "complaints" if escalation else issue.dept,
            "business_type": issue.business_type,
            "support_system": issue.support_system,
            "bearer_network": issue.bearer_network,
            "sentiment": sentiment,
            "urgency": self._urgency(issue, escalation, scenario),
            "language": language,
            "issue": issue.id,
            "escalation": escalation,
            "city": city if city_named else None,
            "repeat": attempt > 1,
            "pii": tuple(pii),
            "scenario": scenario,
            "text_kind": "contact",
        }
        return text, labels

    @staticmethod
    def _urgency(issue: Issue, escalation: str | None, scenario: str | None) -> str:
        """Text-only urgency (the customer's tier and history raise it later, in the pipeline)."""
        if escalation == "regulator":
            return "P1"
        if escalation is not None or issue.kind == "conduct" or scenario == "outage":
            return "P2"
        if issue.kind in ("fault", "dispute"):
            return "P3"
        return "P4"

    def _mix(self, text: str) -> str:
        r = self.r
        x = r()
        if x < 0.35:
            return self.pick(MIX_OPENERS) + text
        if x < 0.7:
            return text.rstrip("。") + "，" + self.pick(MIX_CLOSERS)
        for zh, en in MIX_SWAPS:
            if zh in text:
                return text.replace(zh, en, 1)
        return text + " " + self.pick(MIX_CLOSERS)

    def _channel_style(self, text: str, channel: str, issue: Issue, language: str) -> str:
        r = self.r
        if language == "en":
            return text
        if channel == "phone":
            # speech-to-text transcripts: no punctuation, hesitations
            return (self.pick(FILLERS) + text.translate(_ASR_TABLE)).strip()
        if channel == "email":
            body = text if r() < 0.5 else self.pick(OPENERS) + text
            return f"{self.pick(EMAIL_OPENERS)}\n{body}\n{self.pick(EMAIL_CLOSINGS)}"
        if channel == "weibo":
            tag = self.pick(WEIBO_TAGS.get(issue.dept, ("",)))
            return f"@云通客服 {text}" + (f" {tag}" if tag else "")
        if channel == "sms":
            return text
        if r() < 0.45:
            opener = self.pick(OPENERS)
            if opener:
                return opener + text
        return text

    # ---------------------------------------------------------- survey comment
    def survey_comment(
        self, csat: int, issue: Issue, solved: bool, waited_long: bool
    ) -> tuple[str, Labels]:
        """A free-text survey comment consistent with the score and what happened.

        Generic praise or waiting-time remarks have no owning department
        (``department`` None); a remark about the unsolved issue belongs to the
        issue's department, one about staff conduct to ``complaints``.
        """
        r = self.r
        slots = _Slots(self)
        dept: str | None = None
        business_type = "service"
        if csat >= 4:
            text = "".join(self._fill(self.pick(part), slots) for part in SURVEY_POS)
            sentiment = "positive"
        elif csat == 3:
            text = self.pick(SURVEY_NEU)
            sentiment = "neutral"
        else:
            sentiment = "negative"
            x = r()
            if not solved and x < 0.6:
                text = self.pick(SURVEY_NEG_ISSUE[issue.dept])
                dept, business_type = issue.dept, issue.business_type
            elif waited_long and x < 0.85:
                text = self._fill(self.pick(SURVEY_NEG_WAIT), slots)
            elif x < 0.92:
                text = self.pick(SURVEY_NEG_CONDUCT)
                dept = "complaints"
            else:
                text = (
                    self._fill(self.pick(SURVEY_NEG_WAIT), slots)
                    + "，"
                    + self.pick(SURVEY_NEG_ISSUE[issue.dept])
                )
                dept, business_type = issue.dept, issue.business_type
            text += self.pick(NEG_PUNCT)
        labels: Labels = {
            "department": dept,
            "business_type": business_type,
            "support_system": issue.support_system if dept == issue.dept else "none",
            "bearer_network": issue.bearer_network if dept == issue.dept else "none",
            "sentiment": sentiment,
            "urgency": "P2" if dept == "complaints" else "P4",
            "language": "zh",
            "issue": issue.id,
            "escalation": "attitude" if dept == "complaints" else None,
            "city": None,
            "repeat": False,
            "pii": (),
            "scenario": None,
            "text_kind": "survey_comment",
        }
        return text, labels
